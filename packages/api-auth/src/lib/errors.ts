/**
 * The RFC 6750 §3.1 error codes a resource server puts in `WWW-Authenticate`, the two RFC 9449 §7.1
 * and §9 add for DPoP (`invalid_dpop_proof`, `use_dpop_nonce`), plus the two we use when the server
 * itself cannot decide (`temporarily_unavailable`, `server_error`, RFC 6749 §4.1.2.1 wording).
 */
export type BearerErrorCode =
  | 'invalid_request'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'invalid_dpop_proof'
  | 'use_dpop_nonce'
  | 'temporarily_unavailable'
  | 'server_error';

/** Stable codes of {@link AccessTokenError}; match on these, never on messages. */
export type AccessTokenErrorCode =
  /** No credentials at all (or an unsupported scheme): 401 challenge without `error`. */
  | 'ERR_API_AUTH_NO_TOKEN'
  /** Malformed `Authorization` header, or the token sent by more than one method: 400. */
  | 'ERR_API_AUTH_INVALID_REQUEST'
  /** The token is not acceptable (signature, claims, type, expired, inactive …): 401. */
  | 'ERR_API_AUTH_INVALID_TOKEN'
  /**
   * A Bearer token on a route that accepts only DPoP: 401 with a bare `DPoP` challenge (RFC 6750
   * §3.1: an unsupported method gets no `error`).
   */
  | 'ERR_API_AUTH_DPOP_REQUIRED'
  /** The DPoP proof failed a check of RFC 9449 §4.3 (or was replayed): 401 `invalid_dpop_proof`. */
  | 'ERR_API_AUTH_INVALID_DPOP_PROOF'
  /** The proof lacks a current server nonce: 401 `use_dpop_nonce` with a `DPoP-Nonce` header (RFC 9449 §9). */
  | 'ERR_API_AUTH_USE_DPOP_NONCE'
  /** The token lacks a scope the route requires: 403. */
  | 'ERR_API_AUTH_INSUFFICIENT_SCOPE'
  /** A client token on a user-only route, or a user token on a client-only route: 403. */
  | 'ERR_API_AUTH_WRONG_TOKEN_KIND'
  /** The issuer's metadata or JWKS cannot be fetched right now: 503 (fail closed). */
  | 'ERR_API_AUTH_KEYS_UNAVAILABLE'
  /** The introspection endpoint failed or timed out: 503 (fail closed). */
  | 'ERR_API_AUTH_INTROSPECTION_UNAVAILABLE'
  /** The DPoP replay cache (e.g. Redis) failed or timed out: 503 (fail closed, never a replay let through). */
  | 'ERR_API_AUTH_REPLAY_STORE_UNAVAILABLE'
  /** The issuer's metadata contradicts the configuration (e.g. a different `issuer`): 500. */
  | 'ERR_API_AUTH_CONFIG'
  /** A scope/kind guard ran without `requireAccessToken` before it, or an unexpected failure: 500. */
  | 'ERR_API_AUTH_INTERNAL';

interface ErrorShape {
  status: number;
  error: BearerErrorCode | undefined;
}

const SHAPES: Readonly<Record<AccessTokenErrorCode, ErrorShape>> = {
  ERR_API_AUTH_NO_TOKEN: { status: 401, error: undefined },
  ERR_API_AUTH_INVALID_REQUEST: { status: 400, error: 'invalid_request' },
  ERR_API_AUTH_INVALID_TOKEN: { status: 401, error: 'invalid_token' },
  ERR_API_AUTH_DPOP_REQUIRED: { status: 401, error: undefined },
  ERR_API_AUTH_INVALID_DPOP_PROOF: { status: 401, error: 'invalid_dpop_proof' },
  ERR_API_AUTH_USE_DPOP_NONCE: { status: 401, error: 'use_dpop_nonce' },
  ERR_API_AUTH_INSUFFICIENT_SCOPE: { status: 403, error: 'insufficient_scope' },
  // RFC 6750 has no code for "wrong kind of token"; insufficient_scope is the closest: the caller
  // needs a token with different privileges, not a fresh one.
  ERR_API_AUTH_WRONG_TOKEN_KIND: { status: 403, error: 'insufficient_scope' },
  ERR_API_AUTH_KEYS_UNAVAILABLE: { status: 503, error: 'temporarily_unavailable' },
  ERR_API_AUTH_INTROSPECTION_UNAVAILABLE: { status: 503, error: 'temporarily_unavailable' },
  ERR_API_AUTH_REPLAY_STORE_UNAVAILABLE: { status: 503, error: 'temporarily_unavailable' },
  ERR_API_AUTH_CONFIG: { status: 500, error: 'server_error' },
  ERR_API_AUTH_INTERNAL: { status: 500, error: 'server_error' },
};

/**
 * The one error class of `@gatehouse/api-auth`. Every rejection carries a stable {@link code}, the
 * HTTP {@link status} to answer with and the RFC 6750 {@link error} code. The message and
 * {@link description} never contain the token.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 */
export class AccessTokenError extends Error {
  override readonly name = 'AccessTokenError';
  /** Stable machine-readable code, e.g. `ERR_API_AUTH_INVALID_TOKEN`. */
  readonly code: AccessTokenErrorCode;
  /** HTTP status to answer with (400, 401, 403, 500 or 503). */
  readonly status: number;
  /** RFC 6750 / RFC 9449 `error` attribute; undefined for a bare challenge (no usable credentials sent). */
  readonly error: BearerErrorCode | undefined;
  /** Human-readable `error_description`; safe to show (no token, no quotes or backslashes). */
  readonly description: string;
  /** For `insufficient_scope`: the scopes the route requires (RFC 6750 `scope` attribute). */
  readonly scope: readonly string[] | undefined;

  constructor(
    code: AccessTokenErrorCode,
    description: string,
    options?: { cause?: unknown; scope?: readonly string[] },
  ) {
    super(description, options?.cause === undefined ? undefined : { cause: options.cause });
    const shape = SHAPES[code];
    this.code = code;
    this.status = shape.status;
    this.error = shape.error;
    this.description = description;
    this.scope = options?.scope;
  }
}
