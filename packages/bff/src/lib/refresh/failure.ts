// Sorts a failed token-endpoint request by its CAUSE (SECURITY R5, R5a), never by the error class a
// library happens to throw: openid-client reports a timeout as a ClientError, a refused connection as
// a TypeError and a 503 page as a ClientError holding the Response. Only two causes end a session: the
// OP refused the grant (`invalid_grant`, R4) or the refreshed ID token failed validation (R6). Anything
// that says "the OP or the network is not well right now" keeps the session.
import * as client from 'openid-client';
import { BffError } from '../errors.js';

/**
 * - `transient`: the OP or the network failed (timeout, reset, refused, DNS, 5xx, 429, an error page
 *   that is not OAuth JSON, a cut-off body): keep the session, answer 503, try again later.
 * - `response`: the OP answered OAuth, but not with something usable and not `invalid_grant`
 *   (`invalid_client`, `invalid_scope`, a token response without `access_token`, …): keep the session,
 *   answer 502 — a configuration problem is not the user's.
 * - `invalid_grant`: the refresh token is dead (R4): end the session.
 * - `validation`: the refreshed ID token failed validation (R6), or a DPoP-bound session got an unbound
 *   token (D1): end the session.
 */
export type TokenFailureKind = 'transient' | 'response' | 'invalid_grant' | 'validation';

/** What the BFF decides about one failed token request. */
export interface TokenFailure {
  readonly kind: TokenFailureKind;
  /**
   * Whether sending the same refresh token again at once is safe: true only when the OP cannot have
   * acted on this request (no connection, or it answered an error status). After a timeout or a cut-off
   * 200 the OP may have rotated the refresh token already, and with rotation a second use of the old one
   * revokes the whole grant (RFC 9700 §4.14.2), so those are never retried in place.
   */
  readonly retryable: boolean;
  /** Seconds the OP asked us to wait (`Retry-After` of a 429/503), capped; undefined when it said nothing. */
  readonly retryAfter?: number | undefined;
  /** A short, non-secret label of the cause for logs (`timeout`, `network`, `http_503`, …). */
  readonly cause: string;
}

/** The longest `Retry-After` the BFF honours (seconds): an OP asking for an hour must not stall sessions. */
export const MAX_RETRY_AFTER = 60;

/** Connection-level error codes (Node and undici) that mean "no usable answer from the OP". */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_FAIL',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ETIMEDOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RESPONSE_STATUS_CODE',
]);
/** Of those, the ones after which the OP may still be working on the request. */
const AMBIGUOUS_CODES = new Set(['ETIMEDOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

const codeOf = (err: unknown): string | undefined => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
};

/** The error and its causes, outermost first (bounded: cause chains can be cyclic). */
function chain(err: unknown): unknown[] {
  const out: unknown[] = [];
  let current: unknown = err;
  for (let i = 0; i < 6 && current !== undefined && current !== null; i++) {
    out.push(current);
    current = (current as { cause?: unknown }).cause;
  }
  return out;
}

/** Seconds from a `Retry-After` header (delta-seconds or HTTP-date), capped; undefined when absent/bad. */
export function parseRetryAfter(value: string | null | undefined, nowMs = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  let seconds: number;
  if (/^\d+$/.test(trimmed)) seconds = Number(trimmed);
  else {
    const at = Date.parse(trimmed);
    if (Number.isNaN(at)) return undefined;
    seconds = Math.ceil((at - nowMs) / 1000);
  }
  return Math.min(MAX_RETRY_AFTER, Math.max(0, seconds));
}

const retryAfterOf = (response: Response | undefined) =>
  response ? parseRetryAfter(response.headers.get('retry-after')) : undefined;

/**
 * 5xx and 429 mean "not now" whatever the body says (transient; the OP did not act on the request, so
 * the same refresh token may be sent again). Callers decide what other statuses mean.
 */
function byStatus(status: number, response: Response | undefined): TokenFailure | undefined {
  if (status >= 500 || status === 429) {
    return {
      kind: 'transient',
      retryable: true,
      retryAfter: retryAfterOf(response),
      cause: `http_${status}`,
    };
  }
  return undefined;
}

/** Classifies a failed refresh (or code exchange) at the token endpoint. */
export function classifyTokenFailure(err: unknown): TokenFailure {
  // 1. The OP answered with an OAuth error body (4xx JSON).
  if (err instanceof client.ResponseBodyError) {
    const response = (err as { response?: Response }).response;
    const transient = byStatus(err.status, response);
    if (transient) return transient;
    if (err.error === 'invalid_grant')
      return { kind: 'invalid_grant', retryable: false, cause: 'invalid_grant' };
    // Not in RFC 6749 §5.2 for the token endpoint, but OPs send it there when they shed load.
    if (err.error === 'temporarily_unavailable' || err.error === 'slow_down') {
      return { kind: 'transient', retryable: true, retryAfter: retryAfterOf(response), cause: err.error };
    }
    return { kind: 'response', retryable: false, cause: `oauth_${safeLabel(err.error)}` };
  }
  // 2. A 401/5xx with a WWW-Authenticate challenge (e.g. invalid_client): an answer unless 5xx/429.
  if (err instanceof client.WWWAuthenticateChallengeError) {
    const response = (err as { response?: Response }).response;
    return byStatus(err.status, response) ?? { kind: 'response', retryable: false, cause: 'challenge' };
  }

  // 3. The network: walk the cause chain for a timeout or a connection-level code. A failure while
  // reading the body of an answer (OAUTH_PARSE_ERROR over "terminated") came after the OP answered, so
  // the OP may have rotated the refresh token: not retryable in place.
  const inBody = err instanceof client.ClientError && err.code === 'OAUTH_PARSE_ERROR';
  for (const link of chain(err)) {
    const name = link instanceof Error || link instanceof DOMException ? link.name : undefined;
    const code = codeOf(link);
    if (name === 'TimeoutError' || code === 'OAUTH_TIMEOUT') {
      return { kind: 'transient', retryable: false, cause: 'timeout' };
    }
    if (name === 'AbortError' || code === 'OAUTH_ABORT') {
      return { kind: 'transient', retryable: false, cause: 'aborted' };
    }
    if (code !== undefined && NETWORK_CODES.has(code)) {
      return {
        kind: 'transient',
        retryable: !inBody && !AMBIGUOUS_CODES.has(code),
        cause: `network_${code}`,
      };
    }
  }

  if (err instanceof client.ClientError) {
    const cause = (err as { cause?: unknown }).cause;
    switch (err.code) {
      // An HTTP status the token endpoint should not answer, without an OAuth error body: a gateway's or
      // load balancer's page (502/503 HTML, 404 from a misrouted proxy, 429 page). Not the OP speaking.
      case 'OAUTH_RESPONSE_IS_NOT_CONFORM':
      case 'OAUTH_RESPONSE_IS_NOT_JSON': {
        const response = cause instanceof Response ? cause : undefined;
        const status = response?.status ?? 0;
        const transient = byStatus(status, response);
        if (transient) return transient;
        // A 200 that is not JSON may have been a processed grant whose answer got mangled: no retry.
        return { kind: 'transient', retryable: status !== 200, cause: `not_json_${status}` };
      }
      case 'OAUTH_PARSE_ERROR':
      case 'OAUTH_INVALID_RESPONSE':
      case 'OAUTH_UNSUPPORTED_OPERATION': {
        // openid-client's message is generic; oauth4webapi's own (the cause) names what it refused. The
        // only JWT (or JWE) in a token response is the ID token: refusing it is R6, the session ends.
        const inner = cause instanceof Error ? cause : undefined;
        if (inner && /\bJW[TE]\b|ID Token/.test(inner.message)) {
          return { kind: 'validation', retryable: false, cause: 'id_token' };
        }
        // The body of a 200 did not parse (cut off or garbled on the way): transient, and the OP may
        // have rotated the refresh token already, so no retry in place.
        if (err.code === 'OAUTH_PARSE_ERROR')
          return { kind: 'transient', retryable: false, cause: 'body_parse' };
        // oauth4webapi puts `{ body }` on checks of the token response itself (no access_token, an
        // unsupported token_type) and claims/header/signature details on ID-token checks.
        const detail = (inner as { cause?: unknown } | undefined)?.cause;
        const aboutBody =
          err.code === 'OAUTH_UNSUPPORTED_OPERATION' ||
          (typeof detail === 'object' && detail !== null && 'body' in detail);
        return aboutBody
          ? { kind: 'response', retryable: false, cause: 'token_response' }
          : { kind: 'validation', retryable: false, cause: 'id_token' };
      }
      case 'OAUTH_JWT_CLAIM_COMPARISON_FAILED':
      case 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED':
      case 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED':
        return { kind: 'validation', retryable: false, cause: 'id_token' };
      case 'OAUTH_KEY_SELECTION_FAILED':
        // Signed with a key the OP does not publish (a rotation is caught by the JWKS refetch on an
        // unknown kid before this point; a failed key fetch is a network cause, handled above).
        return { kind: 'validation', retryable: false, cause: 'key_selection' };
      default:
        return { kind: 'response', retryable: false, cause: `client_${safeLabel(err.code ?? 'error')}` };
    }
  }
  // D1: the OP answered a Bearer token to a DPoP-bound session. The answer is unusable and, with
  // rotation, the old refresh token is spent: the session cannot go on bound, so it ends.
  if (err instanceof BffError && err.code === 'ERR_BFF_DPOP_NOT_BOUND') {
    return { kind: 'validation', retryable: false, cause: 'dpop_not_bound' };
  }
  // Our own errors raised below openid-client (e.g. a key fetch): their status says which side failed.
  if (err instanceof BffError) {
    return err.status >= 500
      ? { kind: 'transient', retryable: false, cause: err.code }
      : { kind: 'validation', retryable: false, cause: err.code };
  }
  // A bare TypeError from fetch is a network failure ("fetch failed"); a coded one is a programming error.
  if (err instanceof TypeError && codeOf(err) === undefined) {
    return { kind: 'transient', retryable: true, cause: 'network' };
  }
  // Unknown: never end a session on a failure nobody understood.
  return { kind: 'transient', retryable: false, cause: 'unknown' };
}

/** The kind only (the login callback's use). */
export function classifyTokenError(err: unknown): TokenFailureKind {
  return classifyTokenFailure(err).kind;
}

/** Keeps log labels to a safe alphabet (an OP's `error` value is outside input). */
function safeLabel(value: string): string {
  return /^[A-Za-z0-9_]{1,40}$/.test(value) ? value : 'other';
}
