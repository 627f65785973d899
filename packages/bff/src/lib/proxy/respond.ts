// The proxy's own answers. The browser only ever sees a stable error code: never the upstream's body,
// its address, or a token. 4xx answers are `application/json` `{ error }` (the Duende shape SPAs
// already handle); gateway failures are `application/problem+json` (RFC 9457) with the same code.
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/** Stable error codes the proxy answers with (next to the core's `ERR_BFF_NO_SESSION` & co.). */
export const ProxyErrorCode = Object.freeze({
  badPath: 'ERR_BFF_PROXY_BAD_PATH',
  method: 'ERR_BFF_PROXY_METHOD',
  csrf: 'ERR_BFF_CSRF',
  contentType: 'ERR_BFF_PROXY_CONTENT_TYPE',
  origin: 'ERR_BFF_PROXY_ORIGIN',
  noSession: 'ERR_BFF_NO_SESSION',
  upstreamUnavailable: 'ERR_BFF_UPSTREAM_UNAVAILABLE',
  upstreamTimeout: 'ERR_BFF_UPSTREAM_TIMEOUT',
  internal: 'ERR_BFF_INTERNAL',
});

const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** A BffError-shaped value (`status` + `code`), as thrown by the context's token functions. */
export interface HttpErrorLike {
  readonly status: number;
  readonly code: string;
  /** Whole seconds for a `Retry-After` header (e.g. the IdP in back-off), when the error carries one. */
  readonly retryAfter?: number;
}

/** Narrows an unknown error to one that carries a usable HTTP status and a stable code. */
export function asHttpError(err: unknown): HttpErrorLike | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { status, code, retryAfter } = err as { status?: unknown; code?: unknown; retryAfter?: unknown };
  if (typeof status !== 'number' || status < 400 || status > 599 || typeof code !== 'string')
    return undefined;
  return typeof retryAfter === 'number' && retryAfter > 0
    ? { status, code, retryAfter: Math.ceil(retryAfter) }
    : { status, code };
}

/** Sends `{ error: code }` (4xx) or problem+json (5xx); never a redirect (SECURITY P5). */
export function sendError(
  res: ServerResponse,
  status: number,
  code: string,
  extraHeaders?: Record<string, string>,
): void {
  if (res.writableEnded) return; // already answered (e.g. 504 before the upstream failed too)
  if (res.headersSent) {
    // Too late for a status: cut the response so the browser sees a failure, not a truncated success.
    res.destroy();
    return;
  }
  const problem = status >= 500;
  const body = JSON.stringify(
    problem
      ? { type: 'about:blank', title: TITLES[status] ?? 'Error', status, error: code }
      : { error: code },
  );
  res.writeHead(status, {
    'content-type': problem ? 'application/problem+json' : 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...extraHeaders,
  });
  res.end(body);
}

/** Answers a refused WebSocket handshake on the raw socket, then closes it. */
export function rejectUpgrade(socket: Duplex, status: number, code: string): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({ error: code });
  socket.end(
    `HTTP/1.1 ${status} ${TITLES[status] ?? 'Error'}\r\n` +
      'Content-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Cache-Control: no-store\r\n' +
      'Connection: close\r\n\r\n' +
      body,
  );
}
