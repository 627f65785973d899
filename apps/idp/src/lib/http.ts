// HTTP helpers of the IdP's own pages (headers, forms, the session cookie's SameSite) and of its
// outgoing calls (back-channel logout to a loopback BFF).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { IdpError } from './errors.js';

/** `localhost`, `127.0.0.0/8` or `[::1]`. */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/**
 * oidc-provider refuses outgoing requests to loopback/private addresses (SSRF protection, via an
 * undici `dispatcher` it sets before calling this). The sample BFF's back-channel logout URI is on
 * loopback (`http://localhost:3000/bff/backchannel`), so this development IdP drops that guard for
 * loopback hosts only; every other destination keeps oidc-provider's protection. A production OP
 * must not do this.
 */
export const loopbackFriendlyFetch = (
  input: string | URL | Request,
  init?: RequestInit,
): Promise<Response> => {
  const href = input instanceof Request ? input.url : String(input);
  const url = URL.parse(href);
  if (url && isLoopbackHost(url.hostname) && init) {
    const { dispatcher: _ssrfGuard, ...rest } = init as RequestInit & { dispatcher?: unknown };
    return globalThis.fetch(input, rest);
  }
  return globalThis.fetch(input, init);
};

const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  // No form-action: Chrome applies it to the redirects after the login POST, which leave for the client.
  'content-security-policy':
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

/** Sends one of the IdP's own HTML pages with its security headers (CSP, no framing, no caching). */
export function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, PAGE_HEADERS);
  res.end(html);
}

const MAX_FORM_BYTES = 16 * 1024;

/** Reads a small urlencoded form (the login page's POST); anything else is an {@link IdpError}. */
export async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const type = req.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw new IdpError('ERR_IDP_BAD_FORM', 415, 'expected an application/x-www-form-urlencoded form');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_FORM_BYTES) throw new IdpError('ERR_IDP_BAD_FORM', 413, 'form too large');
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const SESSION_COOKIE = /^_session(\.sig)?=/;

/**
 * Silent login (prompt=none) loads the IdP in an iframe of the BFF's page, a cross-site request,
 * so the IdP session cookie must be `SameSite=None; Secure` to be sent. Koa refuses to set a Secure
 * cookie on a plain-http request, and on a loopback issuer the samples run on http (which browsers
 * and TestBrowser treat as a secure context, so they keep Secure cookies from it). So the session
 * cookie is set as Lax and rewritten here on its way out. Only used for https or loopback issuers.
 */
export function crossSiteSessionCookie(res: ServerResponse): void {
  const setHeader = res.setHeader.bind(res);
  res.setHeader = (name: string, value: number | string | readonly string[]) => {
    if (name.toLowerCase() === 'set-cookie') {
      const rewrite = (cookie: string) =>
        SESSION_COOKIE.test(cookie)
          ? `${cookie.replace(/;\s*samesite=\w+/i, '')}; samesite=none; secure`
          : cookie;
      value = Array.isArray(value) ? value.map(rewrite) : typeof value === 'string' ? rewrite(value) : value;
    }
    return setHeader(name, value);
  };
}
