import type { TokenManager, TokenScopeOptions } from './manager.js';

/** Options of {@link createTokenFetch}. */
export interface TokenFetchOptions extends TokenScopeOptions {
  /** The `fetch` that sends the API requests. Default: the global `fetch` (undici). */
  fetch?: typeof fetch;
}

/** What `fetch` accepts as its first argument. */
export type FetchInput = string | URL | Request;

/** RFC 9110 §9.2.2: methods whose repetition has the same effect as one request. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** Bodies that fetch re-serialises from scratch on every call; streams are consumed by the first send. */
function replayableBody(body: RequestInit['body'] | undefined): boolean {
  return (
    body === undefined ||
    body === null ||
    typeof body === 'string' ||
    body instanceof URLSearchParams ||
    body instanceof ArrayBuffer ||
    ArrayBuffer.isView(body) ||
    body instanceof Blob ||
    body instanceof FormData
  );
}

/** Whether a request may be sent twice: an idempotent method and a body that can be sent again. */
function canReplay(input: FetchInput, init: RequestInit | undefined): boolean {
  const request = input instanceof Request ? input : undefined;
  const method = (init?.method ?? request?.method ?? 'GET').toUpperCase();
  if (!IDEMPOTENT.has(method)) return false;
  if (init?.body !== undefined) return replayableBody(init.body);
  // A Request's own body is a stream: once sent, it is gone.
  return request?.body == null;
}

/**
 * The 401 is about the token unless the challenge names another error: RFC 6750 §3.1 has
 * `invalid_token` for expired/revoked tokens, and many APIs send a bare `Bearer` challenge or none.
 * `invalid_request` means the request itself is malformed: a new token would not help.
 */
function tokenRejected(response: Response): boolean {
  if (response.status !== 401) return false;
  const challenge = response.headers.get('www-authenticate');
  const error = challenge ? /\berror\s*=\s*"?([^",\s]+)/i.exec(challenge)?.[1] : undefined;
  return error === undefined || error === 'invalid_token';
}

/**
 * A `fetch`-compatible function that sends `Authorization: Bearer <token>` from the manager for
 * `client`. When the API answers 401 (`invalid_token`, or without an error code), it drops that
 * token, renews once and retries once, but only when the request is safe to replay: an
 * idempotent method and a body that is absent or replayable (string, bytes, `URLSearchParams`,
 * `Blob`, `FormData`; never a stream). Otherwise, or if the retry gets 401 again, the 401 is
 * returned as is (T8).
 *
 * @example
 * ```ts
 * const api = createTokenFetch(tokens, 'reports');
 * const response = await api('https://api.example/reports');
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 */
export function createTokenFetch(
  manager: TokenManager,
  client: string,
  options: TokenFetchOptions = {},
): (input: FetchInput, init?: RequestInit) => Promise<Response> {
  if (typeof manager?.getAccessToken !== 'function')
    throw new TypeError('createTokenFetch: manager must come from createTokenManager()');
  if (!manager.clients.includes(client)) {
    throw new TypeError(
      `createTokenFetch: unknown client ${JSON.stringify(client)}; configured: ${manager.clients.join(', ')}`,
    );
  }
  if (options.fetch !== undefined && typeof options.fetch !== 'function')
    throw new TypeError('createTokenFetch: fetch must be a function');
  const send = options.fetch ?? ((input: FetchInput, init?: RequestInit) => globalThis.fetch(input, init));
  const scope: TokenScopeOptions = { scope: options.scope, resource: options.resource };

  const withToken = (input: FetchInput, init: RequestInit | undefined, token: string): Promise<Response> => {
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    headers.set('authorization', `Bearer ${token}`);
    return send(input, { ...init, headers });
  };

  return async function tokenFetch(input, init) {
    const token = await manager.getAccessToken(client, scope);
    const response = await withToken(input, init, token.accessToken);
    if (!tokenRejected(response) || !canReplay(input, init)) return response;
    // Free the connection before retrying; the first 401 is never shown to the caller.
    await response.body?.cancel().catch(() => {});
    const renewed = await manager.renewAccessToken(client, token.accessToken, scope);
    return withToken(input, init, renewed.accessToken);
  };
}
