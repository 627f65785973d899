// The `remoteApis` option of createBff and its resolved form: types and defaults only (validation is
// options.ts), so every part of the proxy can read them.

/**
 * Which token a remote API route forwards.
 * - `user`: the session's access token; no session → 401.
 * - `client`: a client-credentials token of the BFF's own client; no session needed.
 * - `user-or-client`: the user's token when signed in, else a client token.
 * - `user-or-none`: the user's token when signed in, else no `Authorization` at all.
 * - `none`: never a token (anonymous upstream).
 */
export type RemoteApiTokenType = 'user' | 'client' | 'user-or-client' | 'user-or-none' | 'none';

export const TOKEN_TYPES: readonly RemoteApiTokenType[] = [
  'user',
  'client',
  'user-or-client',
  'user-or-none',
  'none',
];

/** Simple content types a browser can send cross-site without a preflight (X4). */
export const SIMPLE_CONTENT_TYPES: readonly string[] = [
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data',
];

/** A remote API declared by the host: requests under `prefix` go to `upstream`. */
export interface RemoteApiOptions {
  /** Local path prefix, e.g. `/api/todos`. Matched case-sensitively on whole segments. */
  prefix: string;
  /**
   * Upstream origin plus base path, e.g. `http://127.0.0.1:4001/api/todos`. `/api/todos/1?x=y` is
   * forwarded to `http://127.0.0.1:4001/api/todos/1?x=y`. No query, fragment or credentials.
   */
  upstream: string;
  /** Which token to attach. Default `user`. */
  token?: RemoteApiTokenType;
  /**
   * Require the static anti-forgery header `X-CSRF: 1` (else 401 `ERR_BFF_CSRF` like every BFF endpoint, the Duende contract; SECURITY X1).
   * Default true. WebSocket upgrades use an `Origin` check instead.
   */
  csrf?: boolean;
  /** Seconds to wait for the upstream's response headers before answering 504. Default 30. */
  timeout?: number;
  /**
   * Seconds the upstream's response body may stay silent — no byte after the headers or after the last
   * byte — before the BFF gives up on it: the upstream connection is closed and the browser's response
   * cut (never ended as if complete), so a stalled body cannot hold both connections for as long as the
   * tab stays open (SECURITY P9). Time the browser takes to read (backpressure) does not count. A
   * server-sent-events stream must send something more often (a `:` comment line is enough), or set
   * `false`: no limit, the stream ends when either side leaves. Default 300.
   */
  bodyTimeout?: number | false;
  /** HTTP methods this route accepts (else 405). Default: any method. */
  methods?: readonly string[];
  /**
   * Simple content types (`text/plain`, form-encoded, multipart) allowed on state-changing calls of
   * this route. Default none: they get 415 (SECURITY X4).
   */
  allowSimpleContentTypes?: readonly string[];
  /**
   * Resource indicator (RFC 8707) or audience for this upstream's token, passed to the token source
   * so each API gets an audience-restricted token (SECURITY P4). Default: none (the login token).
   */
  resource?: string;
  /** Scope for `client` tokens. Default: the client's configured scope. */
  scope?: string;
  /** Allow WebSocket upgrades on this prefix. Default true. */
  websocket?: boolean;
  /**
   * Allowlist mode (SECURITY P2a): forward only these request headers (case-insensitive), plus body
   * framing (`Content-Length`, `Transfer-Encoding`) and, on WebSocket upgrades, the handshake. List
   * `content-type` and `accept` if the upstream needs them. Credentials, hop-by-hop and steering headers
   * (`X-Forwarded-*`, `Forwarded`, `X-Original-URL`, `X-HTTP-Method-Override`, client-IP headers) cannot
   * be listed. Default: every header except those.
   */
  forwardHeaders?: readonly string[];
  /**
   * Send the BFF's own `X-Forwarded-For` (its TCP peer), `X-Forwarded-Proto` and `X-Forwarded-Host` (its
   * public origin) to this upstream. The browser's own are always dropped (SECURITY P2a). Default false.
   */
  xForwarded?: boolean;
  /**
   * Largest request body forwarded, in bytes (SECURITY P9). A larger `Content-Length` gets 413 before
   * anything is sent; a chunked body is counted as it streams and cut at the limit (the upstream gets
   * nothing beyond it). Default 10 MiB (10 485 760).
   */
  maxBodySize?: number;
  /**
   * Most request headers forwarded, counted after the BFF's own header changes (SECURITY P9); more →
   * 431. Default 100.
   */
  maxHeaderCount?: number;
  /**
   * Most bytes of request header names and values forwarded, counted after the BFF's own header
   * changes (so with the access token, without the cookie); more → 431. Default 16 384.
   */
  maxHeaderBytes?: number;
  /**
   * Per-session token bucket for this route (SECURITY P7): `burst` calls at once, refilled at
   * `perSecond`; over it → 429 with `Retry-After`. Kept in the session store, so it holds across BFF
   * instances. Applies to calls made with a session; anonymous calls are not limited. `false` turns
   * it off. Default `{ burst: 100, perSecond: 20 }`.
   */
  rateLimit?: RateLimitOptions | false;
}

/** A token bucket: `burst` calls at once, refilled at `perSecond` calls per second. */
export interface RateLimitOptions {
  burst: number;
  perSecond: number;
}

/** Default per-session, per-route bucket: generous for a person, a brake on a runaway script. */
export const DEFAULT_RATE_LIMIT: Readonly<RateLimitOptions> = Object.freeze({ burst: 100, perSecond: 20 });
/**
 * Default `bodyTimeout`: five minutes of silence. Far above the heartbeat of SSE servers written to pass
 * through common proxies (nginx cuts a silent upstream after 60 s by default), far below "forever".
 */
export const DEFAULT_BODY_TIMEOUT = 300;
/** Default `maxBodySize`: 10 MiB. */
export const DEFAULT_MAX_BODY_SIZE = 10 * 1024 * 1024;

/** A remote API route after validation (frozen). */
export interface ResolvedRemoteApi {
  readonly prefix: string;
  /** The upstream origin, e.g. `http://127.0.0.1:4001`. */
  readonly upstreamOrigin: string;
  /** The upstream base path without a trailing slash (`''` for the root). */
  readonly upstreamBasePath: string;
  readonly token: RemoteApiTokenType;
  readonly csrf: boolean;
  readonly timeout: number;
  /** Seconds of response-body silence allowed, or false for no limit. */
  readonly bodyTimeout: number | false;
  /** Upper-case method names, or undefined for any method. */
  readonly methods: readonly string[] | undefined;
  readonly allowSimpleContentTypes: readonly string[];
  readonly resource: string | undefined;
  readonly scope: string | undefined;
  readonly websocket: boolean;
  /** Lower-case header names forwarded in allowlist mode, or undefined for the default filter. */
  readonly forwardHeaders: readonly string[] | undefined;
  readonly xForwarded: boolean;
  readonly maxBodySize: number;
  readonly maxHeaderCount: number;
  readonly maxHeaderBytes: number;
  readonly rateLimit: Readonly<RateLimitOptions> | undefined;
}
