/** Stable error codes raised by the token manager. */
export type TokenManagerErrorCode =
  /** The authorization server rejected the client's authentication (`invalid_client`). */
  | 'ERR_TOKEN_INVALID_CLIENT'
  /** The client may not use the client-credentials grant (`unauthorized_client`). */
  | 'ERR_TOKEN_UNAUTHORIZED_CLIENT'
  /** The requested scope is invalid, unknown or not allowed for the client (`invalid_scope`). */
  | 'ERR_TOKEN_INVALID_SCOPE'
  /** The token was issued but its granted `scope` does not cover the requested scopes (T7). */
  | 'ERR_TOKEN_SCOPE_NOT_GRANTED'
  /** Any other OAuth error response (`invalid_request`, `invalid_target`, …). */
  | 'ERR_TOKEN_REQUEST_REJECTED'
  /** 5xx, 429, timeout or network failure after the bounded retries (or inside a `Retry-After` window). */
  | 'ERR_TOKEN_ENDPOINT_UNAVAILABLE'
  /** The token endpoint answered 200 with something that is not a usable token response. */
  | 'ERR_TOKEN_INVALID_RESPONSE'
  /** Issuer discovery failed (metadata unreachable or inconsistent). */
  | 'ERR_TOKEN_DISCOVERY'
  /**
   * DPoP is configured but the token is not bound to the key: the server answered another
   * `token_type` than `DPoP`, rejected the proof (`invalid_dpop_proof`), or asked for a nonce a
   * second time in a row (`use_dpop_nonce`; the manager retries once, never in a loop) (T9).
   */
  | 'ERR_TOKEN_DPOP';

/** Codes that come from a configuration problem: retrying cannot help, so they are remembered (T6). */
export const FATAL_CODES: ReadonlySet<TokenManagerErrorCode> = new Set([
  'ERR_TOKEN_INVALID_CLIENT',
  'ERR_TOKEN_UNAUTHORIZED_CLIENT',
  'ERR_TOKEN_INVALID_SCOPE',
  'ERR_TOKEN_SCOPE_NOT_GRANTED',
  'ERR_TOKEN_REQUEST_REJECTED',
  'ERR_TOKEN_INVALID_RESPONSE',
  'ERR_TOKEN_DPOP',
]);

const STATUS: Record<TokenManagerErrorCode, number> = {
  ERR_TOKEN_INVALID_CLIENT: 502,
  ERR_TOKEN_UNAUTHORIZED_CLIENT: 502,
  ERR_TOKEN_INVALID_SCOPE: 502,
  ERR_TOKEN_SCOPE_NOT_GRANTED: 502,
  ERR_TOKEN_REQUEST_REJECTED: 502,
  ERR_TOKEN_ENDPOINT_UNAVAILABLE: 503,
  ERR_TOKEN_INVALID_RESPONSE: 502,
  ERR_TOKEN_DISCOVERY: 503,
  ERR_TOKEN_DPOP: 502,
};

/** Details attached to a {@link TokenManagerError}; none of them is ever a token or a secret. */
export interface TokenManagerErrorDetails {
  /** The configured client name the request was for. */
  client: string;
  /** The OAuth `error` value of the token endpoint's response, when there was one. */
  oauthError?: string | undefined;
  /** HTTP status of the token endpoint's response, when there was one. */
  upstreamStatus?: number | undefined;
  /** Seconds the server asked us to wait (`Retry-After`), when it did. */
  retryAfter?: number | undefined;
  /** Number of token requests made for this failure. */
  attempts?: number | undefined;
  cause?: unknown;
}

/**
 * The one error class of `@gatehouse/token-manager`. `code` is stable and meant for programs;
 * `status` is the HTTP status an application would typically answer with (502 for a rejected
 * request, 503 while the authorization server is unavailable). The message names the client and
 * the OAuth error code only: never a secret, a token or the server's free-text description.
 */
export class TokenManagerError extends Error {
  override name = 'TokenManagerError';
  readonly code: TokenManagerErrorCode;
  readonly status: number;
  readonly client: string;
  readonly oauthError: string | undefined;
  readonly upstreamStatus: number | undefined;
  readonly retryAfter: number | undefined;
  readonly attempts: number | undefined;
  /** `true` for failures a later attempt may fix (5xx, 429, network, timeout). */
  readonly retryable: boolean;

  constructor(code: TokenManagerErrorCode, message: string, details: TokenManagerErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.status = STATUS[code];
    this.client = details.client;
    this.oauthError = details.oauthError;
    this.upstreamStatus = details.upstreamStatus;
    this.retryAfter = details.retryAfter;
    this.attempts = details.attempts;
    this.retryable = !FATAL_CODES.has(code);
  }
}
