import { AccessTokenError } from './errors.js';

/** The parts of an HTTP request that may carry a bearer token, in any framework. */
export interface BearerRequest {
  /** The `Authorization` header value, if any. */
  readonly authorization: string | undefined;
  /** The request target (path and query), used to spot `?access_token=`. */
  readonly url?: string;
  /** The parsed body, if any, used to spot a form-encoded `access_token`. */
  readonly body?: unknown;
}

/** RFC 6750 §2.1: `Bearer` 1*SP b64token; the scheme is case-insensitive (RFC 9110 §11.1). */
const BEARER_SCHEME = /^Bearer(?: |$)/i;

/** The credentials after `Bearer` and its spaces, or undefined when the header is malformed. */
function bearerToken(header: string): string | undefined {
  // Checked by hand instead of one capturing regex: this runs on every request.
  if (header.length < 8 || !BEARER_SCHEME.test(header)) return undefined;
  let start = 6;
  while (header.charCodeAt(start) === 32) start++;
  if (start === 6) return undefined;
  const token = header.slice(start);
  // Whitespace or a comma means several values, never one b64token. Other characters outside the
  // b64token alphabet are left to the validator (401 invalid_token, "malformed", RFC 6750 §3.1),
  // which decodes every character anyway: a second scan of ~1 KB here cost ~3 µs per request.
  return token.includes(' ') || token.includes('\t') || token.includes(',') ? undefined : token;
}

function inQuery(url: string | undefined): boolean {
  // Cheap substring test first: parsing the query on every request would cost more than it finds.
  if (url === undefined || !url.includes('access_token')) return false;
  const q = url.indexOf('?');
  return q !== -1 && new URLSearchParams(url.slice(q + 1)).has('access_token');
}

function inBody(body: unknown): boolean {
  return typeof body === 'object' && body !== null && Object.hasOwn(body, 'access_token');
}

/**
 * Takes the bearer token from the `Authorization` header, the only method this package accepts
 * (RFC 6750 §2.1; §2.2 and §2.3 methods are refused so tokens stay out of URLs and logs).
 *
 * @throws AccessTokenError `ERR_API_AUTH_NO_TOKEN` (401, no `error`) when no bearer credentials
 *   were sent; `ERR_API_AUTH_INVALID_REQUEST` (400) for a malformed header, or a token in the query
 *   or body (alone or together with the header: RFC 6750 §3.1 "more than one method").
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-2
 */
export function extractBearerToken(request: BearerRequest): string {
  const header = request.authorization;
  let token: string | undefined;
  if (header !== undefined && header !== '') {
    token = bearerToken(header);
    if (token === undefined && BEARER_SCHEME.test(header)) {
      throw new AccessTokenError('ERR_API_AUTH_INVALID_REQUEST', 'the Authorization header is malformed');
    }
    // Another scheme (Basic, DPoP …) counts as "no bearer credentials": a bare challenge follows.
  }
  if (inQuery(request.url) || inBody(request.body)) {
    throw new AccessTokenError(
      'ERR_API_AUTH_INVALID_REQUEST',
      token === undefined
        ? 'send the access token in the Authorization header, not in the query or body'
        : 'the access token was sent by more than one method',
    );
  }
  if (token === undefined) {
    throw new AccessTokenError('ERR_API_AUTH_NO_TOKEN', 'an access token is required');
  }
  return token;
}

/** A ready-to-send HTTP error response. */
export interface AccessTokenErrorResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: { readonly error: string; readonly error_description: string };
}

/**
 * Renders an {@link AccessTokenError} as RFC 6750 §3 prescribes: a `WWW-Authenticate: Bearer`
 * challenge on 400/401/403 (without `error` when no credentials were sent, with `scope` for
 * `insufficient_scope`) and a JSON body `{ error, error_description }` that never holds the token.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export function renderAccessTokenError(error: AccessTokenError, realm: string): AccessTokenErrorResponse {
  const headers: Record<string, string> = { 'cache-control': 'no-store' };
  if (error.status === 400 || error.status === 401 || error.status === 403) {
    let challenge = `Bearer realm="${realm}"`;
    if (error.error !== undefined) {
      // A quoted-string must not contain raw quotes or backslashes (RFC 9110 §5.6.4); strip them.
      challenge += `, error="${error.error}", error_description="${error.description.replace(/["\\]/g, '')}"`;
      if (error.scope !== undefined && error.scope.length > 0)
        challenge += `, scope="${error.scope.join(' ')}"`;
    }
    headers['www-authenticate'] = challenge;
  }
  return {
    status: error.status,
    headers,
    body: { error: error.error ?? 'unauthorized', error_description: error.description },
  };
}
