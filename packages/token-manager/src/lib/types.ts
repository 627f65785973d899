import type { KeyObject } from 'node:crypto';
import type { CryptoKey, PrivateKey } from 'openid-client';

/** Client authentication methods the token manager speaks at the token endpoint. */
export type ClientAuthenticationMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';

/** A private JWK (an object with the private members, e.g. `d`), as exported by `jose.exportJWK`. */
export interface PrivateJwk {
  kty: string;
  d: string;
  kid?: string;
  alg?: string;
  crv?: string;
  [member: string]: unknown;
}

/** JWS algorithms a DPoP key can sign proofs with. */
export type DpopAlgorithm =
  | 'ES256'
  | 'ES384'
  | 'ES512'
  | 'Ed25519'
  | 'EdDSA'
  | 'PS256'
  | 'PS384'
  | 'PS512'
  | 'RS256'
  | 'RS384'
  | 'RS512';

/** Algorithms the manager can generate a DPoP key pair for (`dpop: { generate }`). */
export type DpopGenerateAlgorithm = 'ES256' | 'ES384' | 'ES512' | 'Ed25519' | 'EdDSA';

/**
 * DPoP for a client (RFC 9449): either your own private key, or a key pair the manager generates
 * at creation (it lives in this process only, so tokens bound to it are never shared with another
 * process).
 * @see https://www.rfc-editor.org/rfc/rfc9449
 */
export type DpopOptions =
  | {
      /** Private key: a `CryptoKey` (usage `sign`), a Node `KeyObject`, or a private JWK (with `d`). */
      privateKey: CryptoKey | KeyObject | PrivateJwk;
      /**
       * Proof algorithm. Default from the key: `ES256`/`ES384`/`ES512` by curve, `EdDSA` for
       * Ed25519, `PS256` for RSA (a `CryptoKey` dictates its own).
       */
      alg?: DpopAlgorithm;
    }
  | {
      /** Generate a fresh key pair of this algorithm when the manager is created. */
      generate: DpopGenerateAlgorithm;
    };

/**
 * The DPoP key of one client: its public half, and proofs for requests made with its tokens.
 * Obtain it with `tokenManager.dpopKey(client)`; `createTokenFetch` uses it for you.
 */
export interface DpopKey {
  /** The JWS `alg` of the proofs. */
  readonly alg: DpopAlgorithm;
  /**
   * JWK SHA-256 thumbprint (RFC 7638) of the public key: the `cnf.jkt` of every token bound to it.
   * Public information, safe to log.
   * @see https://www.rfc-editor.org/rfc/rfc7638
   */
  readonly thumbprint: string;
  /** The public key as a JWK (no private members). */
  readonly publicJwk: Readonly<Record<string, string>>;
  /**
   * A fresh proof JWT for one HTTP request (RFC 9449 §4.2): new `jti`, `htm`, `htu` (the URL
   * without query, fragment or credentials), `iat` (wall clock), `ath` when `accessToken` is given
   * (calls to a resource server), and the last nonce that server (by origin) sent, if any.
   * @see https://www.rfc-editor.org/rfc/rfc9449#section-4.2
   */
  proof(method: string, url: string | URL, accessToken?: string): Promise<string>;
  /**
   * Remembers a `DPoP-Nonce` response header of the server at `url` (keyed by origin); later
   * proofs for that server carry it. Malformed values are ignored.
   * @see https://www.rfc-editor.org/rfc/rfc9449#section-8
   */
  rememberNonce(url: string | URL, nonce: string): void;
}

/** One OAuth client the manager obtains client-credentials tokens for. */
export interface TokenClientOptions {
  /**
   * Issuer identifier of the authorization server. Its metadata is discovered once
   * (`/.well-known/openid-configuration`, then the RFC 8414 location) on first use.
   * @see https://www.rfc-editor.org/rfc/rfc8414
   */
  issuer?: string | URL;
  /**
   * Token endpoint URL. Set it to skip discovery. With `issuer` also set, the issuer is still used
   * as the client assertion audience and in the cache key.
   */
  tokenEndpoint?: string | URL;
  /** The `client_id` registered at the authorization server. */
  clientId: string;
  /** Secret for `client_secret_basic` / `client_secret_post`. Kept in memory only, never logged. */
  clientSecret?: string;
  /**
   * How the client authenticates. Default: `private_key_jwt` when `privateKey` is set, else
   * `client_secret_basic`.
   * @see https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1
   * @see https://www.rfc-editor.org/rfc/rfc7523#section-2.2
   */
  clientAuthentication?: ClientAuthenticationMethod;
  /** Signing key for `private_key_jwt`: a private `CryptoKey`, `{ key, kid }`, or a private JWK. */
  privateKey?: CryptoKey | PrivateKey | PrivateJwk;
  /** `private_key_jwt` assertion details. */
  clientAssertion?: {
    /**
     * `aud` of the assertion: the issuer identifier (default, as RFC 7523bis asks) or the token
     * endpoint URL (for older servers that expect it).
     */
    audience?: 'issuer' | 'token_endpoint';
    /**
     * JOSE header `typ`. Default `client-authentication+jwt` (RFC 7523bis); `false` omits it. When
     * the server rejects the first assertion with `invalid_client`, the manager retries once without
     * `typ` and keeps it off for that client if that works.
     */
    typ?: string | false;
  };
  /** Default scope(s) for this client's tokens (space-separated string or array). */
  scope?: string | readonly string[];
  /**
   * Default resource indicator(s) (RFC 8707) for this client's tokens.
   * @see https://www.rfc-editor.org/rfc/rfc8707
   */
  resource?: string | readonly string[];
  /** Extra token request parameters (e.g. `audience` for servers that use it). */
  parameters?: Readonly<Record<string, string>>;
  /**
   * Sender-constrained tokens with DPoP (RFC 9449): every token request carries a proof, the server
   * must answer `token_type: DPoP` (else `ERR_TOKEN_DPOP`, nothing cached), and `createTokenFetch`
   * sends `Authorization: DPoP` with a fresh proof per call. `use_dpop_nonce` from the
   * authorization server or the resource server is retried once with the server's nonce. The key's
   * thumbprint is part of the cache key. Validated at creation. Default: off (Bearer tokens).
   * @see https://www.rfc-editor.org/rfc/rfc9449
   */
  dpop?: DpopOptions;
  /**
   * Allow plain `http:` issuer / token endpoint URLs on hosts other than loopback. Loopback
   * (`localhost`, `127.0.0.1`, `[::1]`) is always allowed so the sample suite runs without TLS.
   * Never set it in production: client secrets and tokens would cross the network in clear text.
   */
  dangerouslyAllowInsecureHttp?: boolean;
}

/** Minimal logger interface (pino-compatible). The default logger is silent. */
export interface TokenManagerLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/**
 * The subset of a node-redis v5 client the shared cache uses. Create it with
 * `disableOfflineQueue: true` so that commands fail at once while Redis is down instead of queueing.
 */
export interface SharedCacheRedisClient {
  readonly isReady: boolean;
  get(key: string): Promise<unknown>;
  set(
    key: string,
    value: string,
    options: { condition?: 'NX'; expiration: { type: 'PX'; value: number } },
  ): Promise<unknown>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
}

/** Shared (cross-process) token cache in Redis. */
export interface SharedCacheOptions {
  /** A connected node-redis v5 client. The manager never connects, closes or reconfigures it. */
  redis: SharedCacheRedisClient;
  /**
   * Secret(s) the cache encryption key is derived from (HKDF-SHA256 → AES-256-GCM), at least 32
   * characters each. The first encrypts; all decrypt, so secrets can be rotated. Access tokens in a
   * shared store are bearer credentials at rest: anyone who can read Redis could replay them.
   */
  encryptionSecret: string | readonly string[];
  /** Prefix of every key the manager writes. Default `gatehouse:token-manager:`. */
  keyPrefix?: string;
  /** Seconds a single Redis command may take before the manager gives up on it. Default 0.5. */
  commandTimeout?: number;
  /** Seconds the renewal lock lives if its holder dies. Default: long enough for all retries. */
  lockTimeout?: number;
  /**
   * Seconds a process waits for another's renewal before requesting a token itself.
   * Default `timeout + 1` (one token request), at most `lockTimeout`.
   */
  waitTimeout?: number;
}

/** Retry policy for transient token endpoint failures (5xx, 429, timeouts, network errors). */
export interface RetryOptions {
  /** Total attempts per token request, including the first. Default 3. */
  attempts?: number;
  /** Base delay in seconds of the exponential backoff (doubled each retry, with jitter). Default 0.25. */
  baseDelay?: number;
  /**
   * Longest delay in seconds the manager waits between two attempts, also for `Retry-After`.
   * A longer `Retry-After` ends the attempts and blocks requests for that key until it has passed.
   * Default 2.
   */
  maxDelay?: number;
  /** Upper bound in seconds for honouring `Retry-After` across calls. Default 60. */
  maxRetryAfter?: number;
  /**
   * Seconds a key rests after its attempts are used up on a transient failure (without
   * `Retry-After`): calls in that window get the still-valid cached token, or the error at once,
   * so a hot loop during an outage costs at most `attempts` requests per window. Default 2.
   */
  cooldown?: number;
}

/** Options of {@link createTokenManager}. */
export interface TokenManagerOptions {
  /** The clients, by the name you pass to `getAccessToken`. */
  clients: Readonly<Record<string, TokenClientOptions>>;
  /**
   * Seconds before `expires_in` runs out at which a token is renewed. Default 60. A token whose
   * lifetime is shorter than twice the margin is renewed at half its lifetime instead.
   */
  renewalMargin?: number;
  /**
   * Renew ahead in the background: inside the renewal margin, while the cached token is still valid,
   * callers get it at once and one renewal runs behind them (single-flight). A slow or frozen IdP then
   * delays no call until the token really runs out; a failed renewal is reported (`token.stale-served`)
   * and the token keeps being served. Default false: a caller inside the margin waits for the renewal
   * (at most the request `timeout` per attempt) and gets the new token.
   */
  renewAhead?: boolean;
  /** Lifetime in seconds assumed when a response has no `expires_in`. Default 60. */
  defaultExpiresIn?: number;
  /**
   * Seconds a rejected request (`invalid_client`, `unauthorized_client`, `invalid_scope`, a scope
   * not granted, …) is remembered: calls in that window fail at once without a request. Default 10;
   * 0 turns it off.
   */
  failureBackoff?: number;
  /** Seconds one token (or discovery) request may take. Default 5. */
  timeout?: number;
  /** Retry policy for transient failures. */
  retry?: RetryOptions;
  /** Share tokens between processes through Redis. Without it, the cache is per process. */
  sharedCache?: SharedCacheOptions;
  /** `fetch` used for discovery and token requests. Default: the global `fetch`. */
  fetch?: typeof fetch;
  /** Wall clock in milliseconds since the epoch (token lifetimes only). Default `Date.now`. */
  clock?: () => number;
  /** Logger (pino-compatible). Default: silent. */
  logger?: TokenManagerLogger;
}

/** Per-call options of `getAccessToken`. */
export interface GetAccessTokenOptions {
  /** Ignore the cached token (it is discarded) and get a new one. */
  forceRenewal?: boolean;
  /** Scope(s) for this call instead of the client's default. */
  scope?: string | readonly string[];
  /** Resource indicator(s) for this call instead of the client's default. */
  resource?: string | readonly string[];
}

/** Where a returned token came from. */
export type TokenSource = 'memory' | 'shared' | 'idp';

/** An access token as returned by `getAccessToken`. */
export interface AccessToken {
  /** The access token. Opaque: the manager never decodes it. */
  accessToken: string;
  /**
   * `DPoP` for a client configured with `dpop` (the token is bound to its key: send it as
   * `Authorization: DPoP` with a proof), else `Bearer`.
   */
  tokenType: 'Bearer' | 'DPoP';
  /** When the token expires, per `expires_in` (or the default lifetime). */
  expiresAt: Date;
  /** The granted scope (the response's `scope`, else the requested one), space-separated. */
  scope: string | undefined;
  /** `true` when no token request was made for this call (memory or shared cache). */
  fromCache: boolean;
  /** `memory`, `shared` (Redis) or `idp` (a token request made by this process). */
  source: TokenSource;
  /**
   * `true` when renewal failed (for any reason) and a not-yet-expired cached token was returned
   * instead.
   */
  stale: boolean;
}
