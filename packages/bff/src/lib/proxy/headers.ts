// Header hygiene for proxied calls (SECURITY P2, P3). The request headers are rewritten on
// `req.headers` itself, before http-proxy copies them: http-proxy skips its `proxyReq` event when the
// request carries `Expect`, so doing this in that event would let such a request through unfiltered.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/**
 * Request headers never forwarded: the browser's credentials, hop-by-hop headers (RFC 9110 §7.6.1),
 * and client-supplied forwarding headers, which the proxy sets itself from configuration.
 * `transfer-encoding` stays: it frames the body, and Node re-frames it on the outgoing request.
 */
const DROPPED_REQUEST_HEADERS: readonly string[] = [
  'cookie',
  'authorization',
  'proxy-authorization',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-real-ip',
];

/** Extra headers a WebSocket handshake needs to keep (they are hop-by-hop for plain requests). */
const UPGRADE_HEADERS = new Set(['connection', 'upgrade']);

/** Response headers never relayed: hop-by-hop ones (Node frames the response), `Set-Cookie` (and `Access-Control-*`, below). */
const DROPPED_RESPONSE_HEADERS = new Set([
  'set-cookie',
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'transfer-encoding',
  'trailer',
  'upgrade',
]);

/** What the proxy tells the upstream about the original request (from configuration, not the client). */
export interface ForwardedFor {
  /** `https` or `http`: the BFF's public scheme. */
  readonly proto: string;
  /** The BFF's public host (with port if not default). */
  readonly host: string;
}

/**
 * Rewrites the incoming request's headers in place for the upstream: drops credentials, hop-by-hop and
 * forwarding headers (also any named in `Connection`), sets `X-Forwarded-*`, and the `Authorization`
 * the route calls for. `remoteAddress` is the TCP peer of this BFF.
 */
export function prepareRequestHeaders(
  headers: IncomingHttpHeaders,
  forwarded: ForwardedFor,
  remoteAddress: string | undefined,
  accessToken: string | undefined,
  upgrade = false,
): void {
  const connection = headers.connection;
  if (typeof connection === 'string' && connection !== '') {
    for (const name of connection.split(',')) {
      const key = name.trim().toLowerCase();
      if (key !== '' && !(upgrade && UPGRADE_HEADERS.has(key))) delete headers[key];
    }
  }
  for (const name of DROPPED_REQUEST_HEADERS) {
    if (upgrade && UPGRADE_HEADERS.has(name)) continue;
    if (headers[name] !== undefined) delete headers[name];
  }
  headers['x-forwarded-proto'] = forwarded.proto;
  headers['x-forwarded-host'] = forwarded.host;
  if (remoteAddress !== undefined) headers['x-forwarded-for'] = remoteAddress;
  if (accessToken !== undefined) headers.authorization = `Bearer ${accessToken}`;
}

/** The upstream's response headers minus the ones the browser must not get. */
export function filterResponseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const connection = headers.connection;
  const named =
    typeof connection === 'string' && connection !== ''
      ? new Set(connection.split(',').map((name) => name.trim().toLowerCase()))
      : undefined;
  for (const name in headers) {
    if (DROPPED_RESPONSE_HEADERS.has(name) || named?.has(name)) continue;
    // The BFF's origin has no CORS policy (SECURITY X2); an upstream must not grant one on its behalf.
    if (name.startsWith('access-control-')) continue;
    const value = headers[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** `WWW-Authenticate: Bearer … error="invalid_token"` (RFC 6750 §3.1): the token itself was refused. */
export function isInvalidTokenChallenge(header: string | undefined): boolean {
  return (
    header !== undefined && /^\s*bearer\b/i.test(header) && /\berror\s*=\s*"?invalid_token"?/i.test(header)
  );
}
