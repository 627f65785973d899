// Turning a failed discovery or token request into a TokenManagerError, by what happened on the wire
// (status, headers, body, what fetch threw), never by the class of error a library wrapped it in.
import type { DpopSigner } from './dpop.js';
import { TokenManagerError, type TokenManagerErrorCode, type TokenManagerErrorDetails } from './errors.js';
import { challengeErrors } from './www-authenticate.js';

function retryAfterSeconds(headers: Headers | undefined, now: number): number | undefined {
  const value = headers?.get('retry-after')?.trim();
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return Number(value);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - now) / 1000);
}

const OAUTH_CODES: Record<string, TokenManagerErrorCode> = {
  invalid_client: 'ERR_TOKEN_INVALID_CLIENT',
  unauthorized_client: 'ERR_TOKEN_UNAUTHORIZED_CLIENT',
  invalid_scope: 'ERR_TOKEN_INVALID_SCOPE',
  use_dpop_nonce: 'ERR_TOKEN_DPOP',
  invalid_dpop_proof: 'ERR_TOKEN_DPOP',
};

/**
 * What happened on the wire during one discovery or token request. Failures are classified from
 * this (the status, the headers, whether the body arrived and parses, what `fetch` threw), never
 * from the class of the error a library wraps them in: a library update cannot turn an outage
 * into a "configuration error" or the reverse.
 */
export interface Exchange {
  /** DPoP key whose proof goes on the request (token requests of a DPoP client only). */
  readonly dpop: DpopSigner | undefined;
  /** Status and headers of the response, when one arrived. */
  status?: number;
  headers?: Headers;
  /** A copy of the response body, read only to classify a failure. */
  copy?: Response;
  /** What `fetch` itself threw: a network error, a DNS failure, a reset, a timeout. */
  failure?: unknown;
}

/** Largest error body read for classification; an error page is never longer in practice. */
const MAX_ERROR_BODY = 64 * 1024;

/** The body as text, or `undefined` when it was cut off, stalled past `timeoutMs`, or was too big. */
async function readBody(response: Response, timeoutMs: number): Promise<string | undefined> {
  const reader = response.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<'stalled'>((resolve) => {
    timer = setTimeout(() => resolve('stalled'), timeoutMs);
  });
  try {
    while (true) {
      const next = await Promise.race([reader.read(), stalled]);
      if (next === 'stalled') return undefined;
      if (next.done) break;
      size += next.value.byteLength;
      if (size > MAX_ERROR_BODY) return undefined;
      chunks.push(next.value);
    }
    return Buffer.concat(chunks).toString('utf8');
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
    reader.cancel().catch(() => {});
  }
}

function jsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** A short, safe name for a network failure: an errno-style code or the abort reason, never a message. */
function networkCause(error: unknown): string {
  let current: unknown = error;
  for (let depth = 0; depth < 6 && current && typeof current === 'object'; depth++) {
    const { name, code, cause } = current as { name?: unknown; code?: unknown; cause?: unknown };
    if (name === 'TimeoutError') return 'timeout';
    if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{2,40}$/.test(code) && !code.startsWith('OAUTH_'))
      return code;
    if (name === 'AbortError') return 'aborted';
    current = cause;
  }
  return 'network error';
}

/** A library error reduced to its name, message and code: its `cause` may hold a token response. */
function sanitized(error: unknown): Error {
  if (!(error instanceof Error)) return new Error(String(error));
  const copy = new Error(error.message);
  copy.name = error.name;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? Object.assign(copy, { code }) : copy;
}

/**
 * Turns a failed discovery or token request into a {@link TokenManagerError}, by cause:
 * - nothing came back (refused, reset, DNS, timeout) → unavailable (retryable);
 * - 5xx, 429, 408 or `temporarily_unavailable` → unavailable, with `Retry-After`;
 * - a body that is cut off, stalls, or is not JSON (an HTML error page from a proxy, a load
 *   balancer, a WAF, even with 200) → unavailable: something between us and the server answered;
 * - an OAuth error body (or `WWW-Authenticate` error) on a 4xx → the server's decision: final;
 * - a 200 JSON body that is not a usable token response → `ERR_TOKEN_INVALID_RESPONSE` (final).
 * Messages carry the client name, the status and the OAuth error code only: never a body.
 */
export async function classifyExchange(
  exchange: Exchange,
  error: unknown,
  client: string,
  now: number,
  discovery: boolean,
  timeoutMs: number,
): Promise<TokenManagerError> {
  if (error instanceof TokenManagerError) return error;
  const what = discovery ? 'discovery' : 'token endpoint';
  const unavailable = (
    detail: string,
    extra: Partial<TokenManagerErrorDetails> = {},
    cause: unknown = sanitized(error),
  ) =>
    new TokenManagerError(
      discovery ? 'ERR_TOKEN_DISCOVERY' : 'ERR_TOKEN_ENDPOINT_UNAVAILABLE',
      `${what} unavailable for client "${client}" (${detail})`,
      { client, cause, ...extra },
    );
  const { status, headers, copy } = exchange;
  if (status === undefined) {
    if (exchange.failure !== undefined) {
      // Keep fetch's own error as the cause: it names the socket problem, never a header or body.
      return unavailable(networkCause(exchange.failure), {}, exchange.failure);
    }
    // Nothing was sent: a local problem (e.g. signing), which retrying cannot fix.
    return new TokenManagerError(
      'ERR_TOKEN_REQUEST_REJECTED',
      `${what} request for client "${client}" could not be sent (${sanitized(error).name})`,
      { client, cause: sanitized(error) },
    );
  }
  const retryAfter = retryAfterSeconds(headers, now);
  const text = copy ? await readBody(copy, timeoutMs) : '';
  if (text === undefined)
    return unavailable(`HTTP ${status}, body cut off or stalled`, { upstreamStatus: status, retryAfter });
  const body = jsonObject(text);
  if (discovery) {
    const detail = status < 300 ? `HTTP ${status}, unusable metadata` : `HTTP ${status}`;
    return unavailable(detail, { upstreamStatus: status, retryAfter });
  }
  const oauthError =
    typeof body?.error === 'string'
      ? body.error
      : challengeErrors(headers?.get('www-authenticate')).find(Boolean);
  if (status >= 500 || status === 429 || status === 408 || oauthError === 'temporarily_unavailable') {
    return unavailable(`HTTP ${status}`, { upstreamStatus: status, oauthError, retryAfter });
  }
  if (status >= 200 && status < 300) {
    if (!body) return unavailable(`HTTP ${status}, not a JSON response`, { upstreamStatus: status });
    return new TokenManagerError(
      'ERR_TOKEN_INVALID_RESPONSE',
      `invalid token response for client "${client}"`,
      {
        client,
        upstreamStatus: status,
        cause: sanitized(error),
      },
    );
  }
  if (!oauthError)
    return unavailable(`HTTP ${status} without an OAuth error`, { upstreamStatus: status, retryAfter });
  const code = OAUTH_CODES[oauthError] ?? 'ERR_TOKEN_REQUEST_REJECTED';
  return new TokenManagerError(code, `token request for client "${client}" rejected: ${oauthError}`, {
    client,
    upstreamStatus: status,
    oauthError,
    cause: sanitized(error),
  });
}

/**
 * Wraps anything a token request threw outside {@link TokenEndpoint} (it classifies its own) into
 * a {@link TokenManagerError}: unexpected, so retryable.
 */
export function asTokenManagerError(error: unknown, client: string): TokenManagerError {
  if (error instanceof TokenManagerError) return error;
  return new TokenManagerError(
    'ERR_TOKEN_ENDPOINT_UNAVAILABLE',
    `token request failed for client "${client}" (${networkCause(error)})`,
    { client, cause: sanitized(error) },
  );
}
