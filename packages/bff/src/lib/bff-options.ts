// The options of createBff as a host writes them: the public shape, documented option by option.
// config.ts validates them once into a ResolvedBffConfig.
import type { CryptoKey, JWK } from 'jose';
import type { BackchannelOptions } from './backchannel/options.js';
import type { DpopOptions } from './dpop/options.js';
import type { FetchLike } from './http/fetch.js';
import type { Logger } from './logger.js';
import type { RemoteApiOptions } from './proxy/options.js';
import type { SessionStore } from './store/types.js';

/** Options of {@link createBff}. Durations are in seconds. */
export interface BffOptions {
  /** The OpenID provider's issuer identifier; discovery metadata must carry exactly this `issuer`. */
  issuer: string;
  /** The BFF's client id at the provider. */
  clientId: string;
  /** Client secret (`client_secret_basic`). Give this or `clientPrivateKey`. */
  clientSecret?: string;
  /** Private key for `private_key_jwt` client authentication (a CryptoKey or a private JWK with `alg`). */
  clientPrivateKey?: CryptoKey | JWK;
  /** Only `code` is accepted (L1); present so a config asking for anything else fails loudly. */
  responseType?: string;
  /** Scopes requested at login. Default `['openid', 'profile', 'offline_access']`. */
  scopes?: readonly string[];
  /** Extra API scopes appended to `scopes` (e.g. `['api']`). Default none. */
  apiScopes?: readonly string[];
  /** RFC 8707 resource indicator(s) sent with the authorization and token requests. */
  resource?: string | readonly string[];
  /** The BFF's public base URL, e.g. `https://app.example` (the redirect URI is `<baseUrl>/bff/callback`). */
  baseUrl: string;
  /** Secret(s) for cookie signing and token encryption, ≥ 32 characters each. The first one signs and
   * encrypts; the others are still accepted, so rotating is: prepend a new secret, later drop the old. */
  sessionSecret: string | readonly string[];
  /** Session store. Default: a bounded in-memory store (single instance only). */
  store?: SessionStore;
  /** Session cookie name; must start with `__Host-`. Default `__Host-bff`. */
  cookieName?: string;
  /** Idle timeout of a session, enforced server-side. Default 7200 (2 h). */
  idleTimeout?: number;
  /** Absolute lifetime of a session, enforced server-side. Keep it ≤ the refresh token's lifetime. Default 43200 (12 h). */
  absoluteTimeout?: number;
  /** A session's last-seen time (and store TTL) is written at most this often. Default 60. */
  touchInterval?: number;
  /**
   * Refresh the access token when it expires within this many seconds. Default 60. A token that lives
   * less than twice this is refreshed at half its lifetime instead.
   */
  refreshMargin?: number;
  /**
   * Timeout of each request to the identity provider, and the longest a request holding an expired
   * access token waits for its refresh. The refresh request itself may take 3 × this (a refresh given
   * up early and sent again would reuse a rotated refresh token). Default 10.
   */
  httpTimeout?: number;
  /** Call the UserInfo endpoint at login (and check its `sub`). Default true. */
  fetchUserInfo?: boolean;
  /**
   * The client's registered `id_token_signed_response_alg` (e.g. `ES256`): the only `alg` accepted in
   * ID tokens (login and refresh) and back-channel logout tokens. Default: every algorithm the OP
   * advertises in `id_token_signing_alg_values_supported` except `none` and HS*. Asymmetric only.
   * @see https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation
   */
  idTokenSignedResponseAlg?: string;
  /**
   * Most concurrent sessions one user (`iss` + `sub`) may hold; a sign-in beyond it ends that user's
   * oldest session (never another user's). Default 20.
   */
  maxSessionsPerUser?: number;
  /** Serve `GET /bff/diagnostics`. Default: only when `NODE_ENV === 'development'`. */
  diagnostics?: boolean;
  /** Local path the callback redirects to on login errors, with `?error=<code>`. Default: an error page. */
  errorPath?: string;
  /**
   * Pushed authorization requests (PAR): the BFF posts the authorization request (state, nonce, PKCE
   * challenge, scope, redirect URI, …) to the OP's `pushed_authorization_request_endpoint` with its
   * client authentication, and the browser is sent to the OP with only `client_id` and `request_uri`.
   * - `'auto'` (default): push when the OP's metadata advertises a PAR endpoint, else use the front
   *   channel (ASP.NET Core's `UseIfAvailable`, which Duende BFF inherits).
   * - `'always'`: always push; an OP without a PAR endpoint is a configuration error (500 at login).
   * - `'never'`: never push; an OP whose metadata says `require_pushed_authorization_requests` is a
   *   configuration error (500 at login).
   * @see https://www.rfc-editor.org/rfc/rfc9126
   */
  pushedAuthorizationRequests?: 'auto' | 'always' | 'never';
  /**
   * DPoP (RFC 9449): sender-constrained access tokens. Each session gets its own key pair (kept only
   * inside the encrypted token record, never sent to the browser); the code redemption, every refresh
   * and every proxied call with the user's token carry a proof (`Authorization: DPoP`), so a token that
   * leaks from an API log is useless without the key. The OP must answer `token_type: DPoP`, else
   * sign-in fails with `ERR_BFF_DPOP_NOT_BOUND`. `true` uses ES256; `{ alg }` picks ES256, ES384 or
   * Ed25519. Default false: every remote API the user's token goes to must accept DPoP-bound tokens.
   * Sessions keep what they started with: switching it changes new sessions only. Client-credentials
   * tokens (`token: 'client'`) stay Bearer.
   * @see https://www.rfc-editor.org/rfc/rfc9449
   */
  dpop?: boolean | DpopOptions;
  /**
   * Shape of the user-claim values `GET /bff/user` returns. `'json'` (default): as in the ID token and
   * UserInfo (strings, numbers, booleans, objects). `'string'`: Duende BFF's shape, every user-claim
   * value a string (`true` → `"true"`, `1700000000` → `"1700000000"`, objects as JSON text), for SPAs
   * written against Duende. Array claims are one entry per element either way; the `bff:*` entries keep
   * Duende's own types (`bff:session_expires_in` is a number).
   */
  userClaimValues?: 'json' | 'string';
  /** Remote APIs proxied by the BFF. */
  remoteApis?: readonly RemoteApiOptions[];
  /** Back-channel logout options. */
  backchannel?: BackchannelOptions;
  /** Structured logger. Default silent. */
  logger?: Logger;
  /** `fetch` used for every request to the identity provider. Default `globalThis.fetch`. */
  fetch?: FetchLike;
  /** Clock in epoch milliseconds. Default `Date.now`. */
  clock?: () => number;
  /** Client-credentials token source for remote APIs with token type `client` (the BFF's own client).
   * Default: a small built-in client-credentials cache using the same client. */
  getClientAccessToken?: (options: { resource?: string; scope?: string }) => Promise<string>;
  /** Allow a non-loopback `http:` issuer. Never in production. Default false. */
  dangerouslyAllowInsecureIssuer?: boolean;
  /** Allow a non-loopback `http:` base URL (cookies then cannot be `__Host-`/Secure). Default false. */
  dangerouslyAllowInsecureBaseUrl?: boolean;
}
