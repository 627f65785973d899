// Cross-site request defences shared by the BFF endpoints, the local-API guard and the proxy.
import type { IncomingMessage } from 'node:http';
import { BffError } from './errors.js';

// OPTIONS is not among them: from another site it is a CORS preflight, which the BFF never grants,
// so it is refused like any other cross-site call instead of getting Express's automatic 200.
const safeMethods = new Set(['GET', 'HEAD']);

/** True when the request carries the static anti-forgery header `X-CSRF: 1` (X1). */
export function hasCsrfHeader(req: IncomingMessage): boolean {
  return req.headers['x-csrf'] === '1';
}

/**
 * X3: an unsafe request from another site is refused. Fetch Metadata decides when present (only
 * `same-origin` and `none` pass); without it, a present `Origin` must equal the BFF's origin.
 * Returns the error to send, or undefined when the request may proceed.
 */
export function crossSiteError(req: IncomingMessage, origin: string): BffError | undefined {
  if (safeMethods.has(req.method ?? 'GET')) return undefined;
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string') {
    return site === 'same-origin' || site === 'none'
      ? undefined
      : new BffError('ERR_BFF_CROSS_SITE', 'cross-site request refused');
  }
  const requestOrigin = req.headers.origin;
  if (requestOrigin !== undefined && requestOrigin !== origin) {
    return new BffError('ERR_BFF_CROSS_SITE', 'cross-origin request refused');
  }
  return undefined;
}
