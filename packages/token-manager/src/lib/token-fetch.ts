import type { TokenManager, TokenScopeOptions } from './manager.js';
import type { AccessToken } from './types.js';
import { challengeErrors } from './www-authenticate.js';

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

/** Whether the request's body (if any) can be sent a second time. */
function canResend(input: FetchInput, init: RequestInit | undefined): boolean {
  if (init?.body !== undefined) return replayableBody(init.body);
  // A Request's own body is a stream: once sent, it is gone.
  return !(input instanceof Request) || input.body == null;
}

/** Whether a request may be repeated: an idempotent method and a body that can be sent again. */
function canReplay(input: FetchInput, init: RequestInit | undefined): boolean {
  const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
  return IDEMPOTENT.has(method) && canResend(input, init);
}

/**
 * The 401 is about the token unless the challenge names another error: RFC 6750 §3.1 has
 * `invalid_token` for expired/revoked tokens, and many APIs send a bare `Bearer` challenge or none.
 * `invalid_request` means the request itself is malformed, `invalid_dpop_proof` the proof: a new
 * token would not help.
 */
function tokenRejected(response: Response): boolean {
  if (response.status !== 401) return false;
  const errors = challengeErrors(response.headers.get('www-authenticate'));
  return errors.length === 0 || errors.includes('invalid_token');
}

/** RFC 9449 §9: the resource server wants a proof with the nonce it sends in `DPoP-Nonce`. */
function nonceRequested(response: Response): boolean {
  return (
    (response.status === 401 || response.status === 400) &&
    response.headers.has('dpop-nonce') &&
    challengeErrors(response.headers.get('www-authenticate')).includes('use_dpop_nonce')
  );
}

/**
 * A `fetch`-compatible function that sends the manager's token for `client`:
 * `Authorization: Bearer <token>`, or for a client configured with `dpop`,
 * `Authorization: DPoP <token>` plus a fresh `DPoP` proof per request (`htm`, `htu` without
 * query/fragment, `iat`, `jti`, `ath`, and the server's nonce once it sent one).
 *
 * Retries, each at most once per call, and only with a body that can be sent again (absent, string,
 * bytes, `URLSearchParams`, `Blob`, `FormData`; never a stream):
 * - the API answers 401 `use_dpop_nonce` with a `DPoP-Nonce` (RFC 9449 §9): the same request with a
 *   proof carrying that nonce (any method: the server refused it before acting on it);
 * - the API answers 401 `invalid_token` (or without an error code) and the method is idempotent:
 *   the token is dropped, renewed, and the request sent again (T8).
 * Otherwise, or when the retry fails the same way, the response is returned as is.
 *
 * @example
 * ```ts
 * const api = createTokenFetch(tokens, 'reports');
 * const response = await api('https://api.example/reports');
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 * @see https://www.rfc-editor.org/rfc/rfc9449#section-7
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
  const dpop = manager.dpopKey(client);

  const withToken = async (
    input: FetchInput,
    init: RequestInit | undefined,
    token: AccessToken,
  ): Promise<Response> => {
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    if (token.tokenType === 'DPoP' && dpop) {
      const url = input instanceof Request ? input.url : String(input);
      const method = init?.method ?? (input instanceof Request ? input.method : 'GET');
      headers.set('authorization', `DPoP ${token.accessToken}`);
      headers.set('dpop', await dpop.proof(method, url, token.accessToken));
      const response = await send(input, { ...init, headers });
      // §8/§9: a server may hand out or rotate its nonce on any response.
      const nonce = response.headers.get('dpop-nonce');
      if (nonce) dpop.rememberNonce(url, nonce);
      return response;
    }
    headers.set('authorization', `Bearer ${token.accessToken}`);
    return send(input, { ...init, headers });
  };

  return async function tokenFetch(input, init) {
    let token = await manager.getAccessToken(client, scope);
    let response = await withToken(input, init, token);
    let nonceRetried = false;
    let renewed = false;
    while (true) {
      const retryNonce =
        token.tokenType === 'DPoP' && !nonceRetried && nonceRequested(response) && canResend(input, init);
      const renew = !retryNonce && !renewed && tokenRejected(response) && canReplay(input, init);
      if (!retryNonce && !renew) return response;
      // Free the connection first; the refused answer is never shown to the caller.
      await response.body?.cancel().catch(() => {});
      if (retryNonce) {
        // The nonce was remembered when the answer came in: same token, a new proof with it.
        nonceRetried = true;
      } else {
        renewed = true;
        token = await manager.renewAccessToken(client, token.accessToken, scope);
      }
      response = await withToken(input, init, token);
    }
  };
}
