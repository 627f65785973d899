import type { DPoPPolicy } from './dpop-config.js';
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
/** RFC 9449 §7.1: `DPoP` 1*SP token68, case-insensitive scheme. */
const DPOP_SCHEME = /^DPoP(?: |$)/i;

/** True when the header uses the DPoP scheme (one char compare first: Bearer requests pay nothing more). */
export function isDPoPScheme(header: string): boolean {
  return (header.charCodeAt(0) | 32) === 100 && DPOP_SCHEME.test(header);
}

/** The credentials after `Bearer` and its spaces, or undefined when the header is malformed. */
function bearerToken(header: string): string | undefined {
  // Checked by hand instead of one capturing regex: this runs on every request.
  if (header.length < 8 || !BEARER_SCHEME.test(header)) return undefined;
  return credentialsAfter(header, 6);
}

/** The credentials after a scheme of `length` characters and its spaces, or undefined when malformed. */
function credentialsAfter(header: string, length: number): string | undefined {
  let start = length;
  while (header.charCodeAt(start) === 32) start++;
  if (start === length) return undefined;
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

/** Which scheme carried the access token, and the token. */
export interface AccessTokenCredentials {
  readonly scheme: 'Bearer' | 'DPoP';
  readonly token: string;
}

/**
 * Takes the access token from the `Authorization` header, `Bearer` or `DPoP` as the route's
 * {@link DPoPPolicy} allows (default `disabled`: like {@link extractBearerToken}). Then call
 * `validator.validate(token)` for Bearer, `validator.validateDPoP(token, …)` for DPoP.
 *
 * @throws AccessTokenError as {@link extractBearerToken}; with `dpop: 'required'`, a Bearer token
 *   gives `ERR_API_AUTH_DPOP_REQUIRED` (401, bare `DPoP` challenge); with `disabled`, a DPoP token
 *   counts as no credentials.
 * @see https://www.rfc-editor.org/rfc/rfc9449#section-7.1
 */
export function extractAccessToken(
  request: BearerRequest,
  options: { readonly dpop?: DPoPPolicy } = {},
): AccessTokenCredentials {
  const policy = options.dpop ?? 'disabled';
  const header = request.authorization;
  if (policy !== 'disabled' && header !== undefined && isDPoPScheme(header)) {
    const token = credentialsAfter(header, 4);
    if (token === undefined) {
      throw new AccessTokenError('ERR_API_AUTH_INVALID_REQUEST', 'the Authorization header is malformed');
    }
    if (inQuery(request.url) || inBody(request.body)) {
      throw new AccessTokenError(
        'ERR_API_AUTH_INVALID_REQUEST',
        'the access token was sent by more than one method',
      );
    }
    return { scheme: 'DPoP', token };
  }
  const token = extractBearerToken(request);
  if (policy === 'required') {
    throw new AccessTokenError(
      'ERR_API_AUTH_DPOP_REQUIRED',
      'this resource requires a DPoP-bound access token (Authorization: DPoP with a DPoP proof)',
    );
  }
  return { scheme: 'Bearer', token };
}

/** How to phrase the `WWW-Authenticate` challenge(s) of a rejection. */
export interface ChallengeOptions {
  /** The route's DPoP policy: which schemes to offer. Default `disabled` (Bearer only). */
  readonly dpop?: DPoPPolicy;
  /** The scheme the rejected request used; the `error` goes on that challenge. Default: Bearer unless DPoP is required. */
  readonly scheme?: 'Bearer' | 'DPoP';
  /** The `algs` attribute of the DPoP challenge (space-separated JWS algorithms). */
  readonly algs?: string;
  /** A server nonce to send as `DPoP-Nonce` (RFC 9449 §9). */
  readonly nonce?: string;
}

/** A ready-to-send HTTP error response. */
export interface AccessTokenErrorResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: { readonly error: string; readonly error_description: string };
}

/** The error attributes of a challenge: `error`, `error_description` and, for scope errors, `scope`. */
function errorAttributes(error: AccessTokenError): string {
  if (error.error === undefined) return '';
  // A quoted-string must not contain raw quotes or backslashes (RFC 9110 §5.6.4); strip them.
  let attributes = `, error="${error.error}", error_description="${error.description.replace(/["\\]/g, '')}"`;
  if (error.scope !== undefined && error.scope.length > 0) attributes += `, scope="${error.scope.join(' ')}"`;
  return attributes;
}

/**
 * Renders an {@link AccessTokenError} as RFC 6750 §3 and RFC 9449 §7.1 prescribe: on 400/401/403 a
 * `WWW-Authenticate` with a `Bearer` challenge, a `DPoP` challenge (with `algs`), or both, as the
 * route's DPoP policy says; `error` (with `error_description`, and `scope` for
 * `insufficient_scope`) sits on the challenge of the scheme the request used and is left out when
 * no usable credentials were sent. The JSON body `{ error, error_description }` never holds the token.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 * @see https://www.rfc-editor.org/rfc/rfc9449#section-7.1
 */
export function renderAccessTokenError(
  error: AccessTokenError,
  realm: string,
  options: ChallengeOptions = {},
): AccessTokenErrorResponse {
  const headers: Record<string, string> = { 'cache-control': 'no-store' };
  if (error.status === 400 || error.status === 401 || error.status === 403) {
    const policy = options.dpop ?? 'disabled';
    const errorScheme =
      policy === 'required' ? 'DPoP' : policy === 'disabled' ? 'Bearer' : (options.scheme ?? 'Bearer');
    const challenges: string[] = [];
    if (policy !== 'required') {
      challenges.push(`Bearer realm="${realm}"${errorScheme === 'Bearer' ? errorAttributes(error) : ''}`);
    }
    if (policy !== 'disabled') {
      const algs = options.algs ? `, algs="${options.algs}"` : '';
      challenges.push(`DPoP realm="${realm}"${errorScheme === 'DPoP' ? errorAttributes(error) : ''}${algs}`);
    }
    // Several challenges in one field, comma-separated (RFC 9110 §11.6.1).
    headers['www-authenticate'] = challenges.join(', ');
  }
  if (options.nonce !== undefined) headers['dpop-nonce'] = options.nonce;
  return {
    status: error.status,
    headers,
    body: { error: error.error ?? 'unauthorized', error_description: error.description },
  };
}
