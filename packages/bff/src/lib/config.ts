// Options of createBff, validated once into a frozen ResolvedBffConfig. Every check throws a TypeError
// whose message says what to set, so a misconfigured host fails at start-up, not on the first login.
import type { CryptoKey, JWK } from 'jose';
import {
  type BackchannelOptions,
  type ResolvedBackchannelOptions,
  resolveBackchannelOptions,
} from './backchannel/options.js';
import {
  fail,
  isLocalPath,
  isLoopbackHost,
  parseUrl,
  type ResolvedClientAuth,
  requireString,
  resolveClientAuth,
  resolveScope,
  resolveSessionSecrets,
  seconds,
} from './config-checks.js';
import { type DpopOptions, type ResolvedDpop, resolveDpop } from './dpop/options.js';
import { ID_TOKEN_ALGORITHMS } from './id-token-algorithms.js';
import type { Logger } from './logger.js';
import { type RemoteApiOptions, type ResolvedRemoteApi, resolveRemoteApis } from './proxy/options.js';
import type { SessionStore } from './store/types.js';

export { isLocalPath, isLoopbackHost, type ResolvedClientAuth } from './config-checks.js';

/** `fetch` as used for every request to the identity provider. */
export type FetchLike = (input: string | URL, init?: RequestInit) => Promise<Response>;

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

/** createBff's options after validation (frozen). Shared by every route module through BffContext. */
export interface ResolvedBffConfig {
  readonly issuer: string;
  readonly clientId: string;
  readonly clientAuth: ResolvedClientAuth;
  /** Space-separated scope string sent at login. */
  readonly scope: string;
  readonly resource: readonly string[];
  /** Public base URL without a trailing slash. */
  readonly baseUrl: string;
  /** Public origin (scheme://host[:port]) for Origin checks and postMessage. */
  readonly origin: string;
  /** `<baseUrl>/bff/callback`. */
  readonly redirectUri: string;
  /** `<baseUrl>/bff/signed-out`, the post-logout landing page (checks `state`, O5). */
  readonly postLogoutRedirectUri: string;
  /** Whether the base URL is plain http on a loopback host (browsers treat it as a secure context). */
  readonly loopbackHttp: boolean;
  readonly sessionSecrets: readonly string[];
  readonly cookieName: string;
  readonly idleTimeout: number;
  readonly absoluteTimeout: number;
  readonly touchInterval: number;
  readonly refreshMargin: number;
  readonly httpTimeout: number;
  readonly fetchUserInfo: boolean;
  /** The registered ID-token `alg`, or undefined to accept the OP's advertised asymmetric set. */
  readonly idTokenSignedResponseAlg: string | undefined;
  readonly maxSessionsPerUser: number;
  readonly diagnostics: boolean;
  readonly errorPath: string | undefined;
  /** When login pushes its authorization request (PAR, RFC 9126). */
  readonly pushedAuthorizationRequests: 'auto' | 'always' | 'never';
  /** DPoP for user tokens, or undefined when off. */
  readonly dpop: ResolvedDpop | undefined;
  readonly userClaimValues: 'json' | 'string';
  readonly allowInsecureIssuer: boolean;
  readonly remoteApis: readonly ResolvedRemoteApi[];
  readonly backchannel: ResolvedBackchannelOptions;
}

const knownOptions = new Set<string>([
  'issuer',
  'clientId',
  'clientSecret',
  'clientPrivateKey',
  'responseType',
  'scopes',
  'apiScopes',
  'resource',
  'baseUrl',
  'sessionSecret',
  'store',
  'cookieName',
  'idleTimeout',
  'absoluteTimeout',
  'touchInterval',
  'refreshMargin',
  'httpTimeout',
  'fetchUserInfo',
  'idTokenSignedResponseAlg',
  'maxSessionsPerUser',
  'diagnostics',
  'errorPath',
  'pushedAuthorizationRequests',
  'dpop',
  'userClaimValues',
  'remoteApis',
  'backchannel',
  'logger',
  'fetch',
  'clock',
  'getClientAccessToken',
  'dangerouslyAllowInsecureIssuer',
  'dangerouslyAllowInsecureBaseUrl',
]);

/** Validates createBff options once; throws a TypeError that says the fix. */
export function resolveConfig(options: BffOptions): ResolvedBffConfig {
  if (typeof options !== 'object' || options === null) fail('pass an options object');
  for (const key of Object.keys(options)) {
    if (!knownOptions.has(key)) fail(`unknown option \`${key}\` (check the spelling against the README)`);
  }

  // L1: the code flow is the only flow.
  if (options.responseType !== undefined && options.responseType !== 'code') {
    fail(
      `\`responseType\` must be "code" (got "${String(options.responseType)}"); implicit and hybrid flows are not supported`,
    );
  }

  const issuer = requireString(
    options.issuer,
    'issuer',
    'the OpenID provider issuer URL, e.g. https://idp.example',
  );
  const issuerUrl = parseUrl(issuer, 'issuer');
  const allowInsecureIssuer = options.dangerouslyAllowInsecureIssuer === true;
  if (issuerUrl.protocol === 'http:' && !isLoopbackHost(issuerUrl.hostname) && !allowInsecureIssuer) {
    fail(
      '`issuer` must use https (http is accepted for loopback hosts only, or set `dangerouslyAllowInsecureIssuer`)',
    );
  }
  if (issuerUrl.protocol !== 'http:' && issuerUrl.protocol !== 'https:')
    fail('`issuer` must be an http(s) URL');

  const clientId = requireString(options.clientId, 'clientId', "the BFF's client id at the provider");

  const clientAuth = resolveClientAuth(options.clientSecret, options.clientPrivateKey);

  const scope = resolveScope(options.scopes, options.apiScopes);

  const resource =
    options.resource === undefined
      ? []
      : typeof options.resource === 'string'
        ? [options.resource]
        : [...options.resource];
  for (const r of resource) {
    const u = parseUrl(r, 'resource');
    if (u.hash) fail('`resource` must not contain a fragment (RFC 8707)');
  }

  const baseUrlRaw = requireString(
    options.baseUrl,
    'baseUrl',
    "the BFF's public URL, e.g. https://app.example",
  );
  const base = parseUrl(baseUrlRaw, 'baseUrl');
  if (base.search || base.hash) fail('`baseUrl` must not have a query or fragment');
  const loopbackHttp = base.protocol === 'http:' && isLoopbackHost(base.hostname);
  if (base.protocol === 'http:' && !loopbackHttp && options.dangerouslyAllowInsecureBaseUrl !== true) {
    fail('`baseUrl` must use https (http is accepted for localhost/127.0.0.1 only)');
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') fail('`baseUrl` must be an http(s) URL');
  const baseUrl = base.href.replace(/\/+$/, '');
  if (base.pathname !== '/') {
    // __Host- cookies need Path=/ and the Duende contract lives at /bff on the origin.
    fail('`baseUrl` must be an origin without a path (mount the BFF at the root of its host)');
  }

  const sessionSecrets = resolveSessionSecrets(options.sessionSecret);

  const cookieName = options.cookieName ?? '__Host-bff';
  if (typeof cookieName !== 'string' || !/^__Host-[A-Za-z0-9._-]{1,64}$/.test(cookieName)) {
    fail('`cookieName` must start with "__Host-" followed by letters, digits, ".", "_" or "-"');
  }

  const idleTimeout = seconds(options.idleTimeout, 'idleTimeout', 7200, 60, 30 * 86400);
  const absoluteTimeout = seconds(options.absoluteTimeout, 'absoluteTimeout', 43200, 60, 365 * 86400);
  if (absoluteTimeout < idleTimeout) fail('`absoluteTimeout` must be ≥ `idleTimeout`');
  const touchInterval = seconds(
    options.touchInterval,
    'touchInterval',
    Math.min(60, idleTimeout / 10),
    0,
    idleTimeout / 2,
  );
  const refreshMargin = seconds(options.refreshMargin, 'refreshMargin', 60, 0, 3600);
  const httpTimeout = seconds(options.httpTimeout, 'httpTimeout', 10, 0.1, 120);

  let errorPath: string | undefined;
  if (options.errorPath !== undefined) {
    if (
      typeof options.errorPath !== 'string' ||
      !isLocalPath(options.errorPath) ||
      options.errorPath.includes('?')
    ) {
      fail('`errorPath` must be a local path like "/error" (no query)');
    }
    errorPath = options.errorPath;
  }

  const idTokenSignedResponseAlg = options.idTokenSignedResponseAlg;
  if (idTokenSignedResponseAlg !== undefined && !ID_TOKEN_ALGORITHMS.includes(idTokenSignedResponseAlg)) {
    fail(
      `\`idTokenSignedResponseAlg\` must be the client's registered asymmetric algorithm, one of ${ID_TOKEN_ALGORITHMS.join(', ')} (got ${JSON.stringify(idTokenSignedResponseAlg)}); "none" and HS* are never accepted`,
    );
  }
  const maxSessionsPerUser = options.maxSessionsPerUser ?? 20;
  if (!Number.isInteger(maxSessionsPerUser) || maxSessionsPerUser < 1 || maxSessionsPerUser > 10_000) {
    fail(
      `\`maxSessionsPerUser\` must be an integer between 1 and 10000, e.g. 20 (got ${String(maxSessionsPerUser)})`,
    );
  }

  const userClaimValues = options.userClaimValues ?? 'json';
  if (userClaimValues !== 'json' && userClaimValues !== 'string') {
    fail(
      `\`userClaimValues\` must be "json" (values as issued) or "string" (Duende's shape), got ${JSON.stringify(userClaimValues)}`,
    );
  }

  const pushedAuthorizationRequests = options.pushedAuthorizationRequests ?? 'auto';
  if (
    pushedAuthorizationRequests !== 'auto' &&
    pushedAuthorizationRequests !== 'always' &&
    pushedAuthorizationRequests !== 'never'
  ) {
    fail(
      `\`pushedAuthorizationRequests\` must be "auto" (push when the OP has a PAR endpoint), "always" or "never", got ${JSON.stringify(pushedAuthorizationRequests)}`,
    );
  }

  for (const fn of ['fetch', 'clock', 'getClientAccessToken'] as const) {
    if (options[fn] !== undefined && typeof options[fn] !== 'function') fail(`\`${fn}\` must be a function`);
  }

  return Object.freeze({
    issuer,
    clientId,
    clientAuth,
    scope,
    resource: Object.freeze(resource),
    baseUrl,
    origin: base.origin,
    redirectUri: `${baseUrl}/bff/callback`,
    postLogoutRedirectUri: `${baseUrl}/bff/signed-out`,
    loopbackHttp,
    sessionSecrets,
    cookieName,
    idleTimeout,
    absoluteTimeout,
    touchInterval,
    refreshMargin,
    httpTimeout,
    fetchUserInfo: options.fetchUserInfo ?? true,
    idTokenSignedResponseAlg,
    maxSessionsPerUser,
    diagnostics: options.diagnostics ?? process.env.NODE_ENV === 'development',
    errorPath,
    pushedAuthorizationRequests,
    dpop: resolveDpop(options.dpop),
    userClaimValues,
    allowInsecureIssuer,
    remoteApis: resolveRemoteApis(options.remoteApis),
    backchannel: resolveBackchannelOptions(options.backchannel),
  });
}
