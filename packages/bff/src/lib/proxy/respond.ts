// The proxy's own answers. Every failure is a BffError (one code table, errors.ts) and goes to the
// browser in one shape: `application/problem+json` (RFC 9457) with the stable code as `code`, and as
// `error` too, the member the rest of the BFF (and the Duende contract SPAs know) uses. Never the
// upstream's body, its address, an errno or a token.
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { BffError, type BffErrorCode, isBffError } from '../errors.js';

const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** The problem+json body of `code` (a pure function of the code, so bodies can be built once). */
export function problemBody(code: BffErrorCode, status: number): string {
  return JSON.stringify({ type: 'about:blank', title: TITLES[status] ?? 'Error', status, code, error: code });
}

// Bodies per code, built on first use: answers like 401/429 can come at a high rate.
const bodies = new Map<BffErrorCode, string>();

/** `err` as a BffError; anything else is an internal error (its details stay in `cause`, server-side). */
export function toBffError(err: unknown): BffError {
  return isBffError(err) ? err : new BffError('ERR_BFF_INTERNAL', 'internal error', { cause: err });
}

/**
 * Answers `err` as problem+json with its status, `Cache-Control: no-store` and no `Location` (SECURITY
 * P5). When the response has already started, it is cut instead: a truncated body must never look
 * like a complete one.
 */
export function sendProblem(res: ServerResponse, err: BffError, extraHeaders?: OutgoingHttpHeaders): void {
  if (res.writableEnded || res.destroyed) return;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  let body = bodies.get(err.code);
  if (body === undefined) {
    body = problemBody(err.code, err.status);
    bodies.set(err.code, body);
  }
  // Headers a host's middleware set before the BFF took the call (helmet's, say) stay; Express's
  // advertisement does not.
  if (res.hasHeader('x-powered-by')) res.removeHeader('x-powered-by');
  res.writeHead(err.status, {
    'content-type': 'application/problem+json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    // e.g. the IdP in back-off, or the rate limit: when to try again.
    ...(err.retryAfter !== undefined ? { 'retry-after': String(err.retryAfter) } : {}),
    ...extraHeaders,
  });
  res.end(body);
}

/** Answers a refused WebSocket handshake on the raw socket (problem+json), then closes it. */
export function rejectUpgrade(socket: Duplex, err: BffError): void {
  if (socket.destroyed) return;
  const body = problemBody(err.code, err.status);
  socket.end(
    `HTTP/1.1 ${err.status} ${TITLES[err.status] ?? 'Error'}\r\n` +
      'Content-Type: application/problem+json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Cache-Control: no-store\r\n' +
      'Connection: close\r\n\r\n' +
      body,
  );
}
