// One error vocabulary for the whole package: BffError with a code from one table, each code with a
// fixed HTTP status. The browser only ever sees the code (written by http/problem.ts, the one error
// writer, as problem+json); messages and causes stay server-side.

/** Stable error codes; the HTTP status of each is fixed. */
export const errorStatus = {
  /** No (valid) session for a request that needs one. */
  ERR_BFF_NO_SESSION: 401,
  /** `X-CSRF: 1` missing on a cookie-authenticated endpoint. */
  ERR_BFF_CSRF: 401,
  /** Cross-site unsafe request (Sec-Fetch-Site / Origin check). */
  ERR_BFF_CROSS_SITE: 403,
  /** The session ended because the refresh token was rejected (`invalid_grant`) or an ID token changed. */
  ERR_BFF_SESSION_ENDED: 401,
  /**
   * The identity provider could not be reached, timed out, answered 5xx/429 or an error page, or is in
   * back-off after such failures; the session is kept. Sent with `Retry-After`.
   */
  ERR_BFF_IDP_UNAVAILABLE: 503,
  /** The identity provider answered something the BFF cannot use. */
  ERR_BFF_IDP_RESPONSE: 502,
  /** The session store (e.g. Redis) is unavailable. */
  ERR_BFF_STORE_UNAVAILABLE: 503,
  /** A login/logout request carried an invalid parameter (returnUrl, prompt, sid). */
  ERR_BFF_BAD_REQUEST: 400,
  /** The callback could not be matched to a login transaction (missing cookie, replay, expiry, forgery). */
  ERR_BFF_LOGIN_TRANSACTION: 400,
  /** The authorization response or token response failed validation, or the IdP reported an error. */
  ERR_BFF_LOGIN_FAILED: 400,
  /**
   * `dpop` is on but the OP answered a token that is not DPoP-bound (`token_type` other than `DPoP`;
   * SECURITY D1): sign-in fails, a session whose refresh gets one ends.
   */
  ERR_BFF_DPOP_NOT_BOUND: 502,
  /** The OpenID provider's metadata is unusable (issuer mismatch, no S256, …). */
  ERR_BFF_CONFIGURATION: 500,
  /** Anything else. */
  ERR_BFF_INTERNAL: 500,
  /** Route not available (e.g. diagnostics outside development). */
  ERR_BFF_NOT_FOUND: 404,
  /** Method not allowed on this endpoint. */
  ERR_BFF_METHOD: 405,
  /** `bff.close()` was called: this instance takes no new work. Sent with `Retry-After`. */
  ERR_BFF_SHUTTING_DOWN: 503,
  /** A remote-API path that is unsafe or ambiguous (dot segments, encoded separators, …; SECURITY P1). */
  ERR_BFF_PROXY_BAD_PATH: 400,
  /** A WebSocket handshake on a remote-API route that does not allow upgrades. */
  ERR_BFF_PROXY_NOT_FOUND: 404,
  /** A WebSocket handshake whose `Origin` is not the BFF's own origin. */
  ERR_BFF_PROXY_ORIGIN: 403,
  /** A method the remote-API route does not allow (`Allow` lists the ones it does). */
  ERR_BFF_PROXY_METHOD: 405,
  /** A request body larger than the route's `maxBodySize` (SECURITY P9); nothing beyond it is forwarded. */
  ERR_BFF_PROXY_BODY_TOO_LARGE: 413,
  /** A simple content type (`text/plain`, form, multipart, none) on a state-changing call (SECURITY X4). */
  ERR_BFF_PROXY_CONTENT_TYPE: 415,
  /** Too many request headers, or too many header bytes, for a remote-API call (SECURITY P9). */
  ERR_BFF_PROXY_HEADERS_TOO_LARGE: 431,
  /** The session called this remote API faster than its rate limit allows (SECURITY P7); see `Retry-After`. */
  ERR_BFF_RATE_LIMITED: 429,
  /** The upstream API could not be reached, reset the connection, or answered unusably. */
  ERR_BFF_UPSTREAM_UNAVAILABLE: 502,
  /** The upstream answered a redirect the BFF will not pass on (SECURITY P8). */
  ERR_BFF_UPSTREAM_REDIRECT: 502,
  /**
   * The upstream asked for a DPoP nonce (`use_dpop_nonce`, RFC 9449 §9) on a call whose streamed body
   * could not be sent again. The nonce is remembered: sending the call again works. Sent with
   * `Retry-After`.
   */
  ERR_BFF_UPSTREAM_DPOP_NONCE: 503,
  /** The upstream sent no response headers within the route's `timeout` (SECURITY P9). */
  ERR_BFF_UPSTREAM_TIMEOUT: 504,
} as const;

/** `Retry-After` (seconds) of a 503 whose thrower knows no better time. */
const DEFAULT_RETRY_AFTER = 1;

/** A stable error code of `@gatehouse/bff`. */
export type BffErrorCode = keyof typeof errorStatus;

/**
 * The error class of `@gatehouse/bff`. `code` is stable and safe to show; `status` is the HTTP status
 * the BFF answers with; `cause` keeps the lower-layer error for logs.
 */
export class BffError extends Error {
  override readonly name = 'BffError';
  readonly code: BffErrorCode;
  readonly status: number;
  /** Whole seconds after which trying again makes sense (sent as `Retry-After`); always set on a 503. */
  readonly retryAfter: number | undefined;

  constructor(code: BffErrorCode, message: string, options?: { cause?: unknown; retryAfter?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = errorStatus[code];
    // A 503 always says when to come back (R5a): clients and load balancers retry, never give up.
    const retryAfter = options?.retryAfter ?? (this.status === 503 ? DEFAULT_RETRY_AFTER : undefined);
    this.retryAfter = retryAfter === undefined ? undefined : Math.max(1, Math.ceil(retryAfter));
  }
}

/**
 * Whether `err` is a BffError, also one thrown by another copy of this package (two versions in one
 * `node_modules`): `instanceof` fails across copies, so the name, the code and its fixed status decide.
 */
export function isBffError(err: unknown): err is BffError {
  if (err instanceof BffError) return true;
  if (!(err instanceof Error) || err.name !== 'BffError') return false;
  const { code, status } = err as { code?: unknown; status?: unknown };
  return (
    typeof code === 'string' &&
    Object.hasOwn(errorStatus, code) &&
    errorStatus[code as BffErrorCode] === status
  );
}

/** `err` as a BffError; anything else is an internal error (its details stay in `cause`, server-side). */
export function toBffError(err: unknown): BffError {
  return isBffError(err) ? err : new BffError('ERR_BFF_INTERNAL', 'internal error', { cause: err });
}

/** Loggable summary of an error: name, code and message, never the cause's body or headers. */
export function describeError(err: unknown): {
  name: string;
  code?: string;
  message: string;
  cause?: object;
} {
  if (!(err instanceof Error)) return { name: typeof err, message: 'non-error thrown' };
  const code = (err as { code?: unknown }).code;
  const summary = { name: err.name, ...(typeof code === 'string' ? { code } : {}), message: err.message };
  // One level of cause (e.g. "connect ECONNREFUSED" under "fetch failed"); Errors only, never bodies.
  const cause = err.cause;
  if (cause instanceof Error) {
    const causeCode = (cause as { code?: unknown }).code;
    const inner =
      cause.cause instanceof Error ? { cause: { name: cause.cause.name, message: cause.cause.message } } : {};
    return {
      ...summary,
      cause: {
        name: cause.name,
        ...(typeof causeCode === 'string' ? { code: causeCode } : {}),
        message: cause.message,
        ...inner,
      },
    };
  }
  return summary;
}
