// Header hygiene for proxied calls (SECURITY P2, P2a, P3). The request headers are rewritten on
// `req.headers` itself, before http-proxy copies them: http-proxy skips its `proxyReq` event when the
// request carries `Expect`, so doing this in that event would let such a request through unfiltered.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/**
 * Request headers never forwarded: the browser's credentials and hop-by-hop headers (RFC 9110 §7.6.1).
 * `transfer-encoding` stays: it frames the body, and Node re-frames it on the outgoing request.
 * `expect` goes too: the proxy answers `100-continue` itself.
 */
const DROPPED_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  'cookie',
  'authorization',
  // A proof is a credential too (RFC 9449): the BFF signs its own for DPoP-bound calls.
  'dpop',
  'proxy-authorization',
  'proxy-authenticate',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
  'http2-settings',
  'expect',
]);

/**
 * P2a: client headers that steer routing, the method or the caller's identity at the upstream (or at a
 * gateway, WAF or framework in front of it). The browser must never be able to set them; the BFF sends
 * its own `X-Forwarded-For/Proto/Host` only when a route asks for it (`xForwarded`). Every `X-Forwarded*`,
 * `X-Original-*` and `X-Envoy-*` header counts, whatever follows the prefix.
 */
const STEERING_HEADERS: ReadonlySet<string> = new Set([
  'forwarded',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-rewrite-url',
  'x-host',
  'x-real-ip',
  'x-client-ip',
  'client-ip',
  'true-client-ip',
  'cf-connecting-ip',
  'fastly-client-ip',
  'x-cluster-client-ip',
  'x-originating-ip',
  'x-remote-ip',
  'x-remote-addr',
  'x-proxyuser-ip',
]);
const STEERING_PREFIXES: readonly string[] = ['x-forwarded', 'x-original-', 'x-envoy-'];

/**
 * True for a request header that steers the upstream (P2a). Underscores count as dashes: CGI-style
 * stacks (PHP, WSGI, Rack) map `X_Forwarded_For` and `X-Forwarded-For` to the same variable.
 */
export function isSteeringHeader(name: string): boolean {
  return isSteeringKey(name.toLowerCase());
}

/** {@link isSteeringHeader} for a lower-case name (Node lower-cases incoming header names). */
function isSteeringKey(key: string): boolean {
  if (STEERING_HEADERS.has(key)) return true;
  for (const prefix of STEERING_PREFIXES) if (key.startsWith(prefix)) return true;
  return key.includes('_') && isSteeringKey(key.replaceAll('_', '-'));
}

/** True for a request header the proxy never forwards as the browser sent it (credentials, hop-by-hop, steering). */
export function isNeverForwarded(name: string): boolean {
  return DROPPED_REQUEST_HEADERS.has(name.toLowerCase()) || isSteeringHeader(name);
}

/** Extra headers a WebSocket handshake needs to keep (they are hop-by-hop for plain requests). */
const UPGRADE_HEADERS = new Set(['connection', 'upgrade']);

/** Kept in allowlist mode without being listed: body framing, and the WebSocket handshake on upgrades. */
const FRAMING_HEADERS = new Set(['host', 'content-length', 'transfer-encoding']);
const HANDSHAKE_HEADERS = new Set([
  'connection',
  'upgrade',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-protocol',
  'sec-websocket-extensions',
]);

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

/** A route's request-header rules (a ResolvedRemoteApi is one). */
export interface HeaderPolicy {
  /** Send the BFF's own `X-Forwarded-For/Proto/Host`. */
  readonly xForwarded: boolean;
  /** Allowlist mode: forward only these lower-case request headers (plus framing). Undefined: all but the dropped ones. */
  readonly forwardHeaders: readonly string[] | undefined;
}

/** No X-Forwarded-* of our own, no allowlist: what a route gets unless it says otherwise. */
const DEFAULT_POLICY: HeaderPolicy = Object.freeze({ xForwarded: false, forwardHeaders: undefined });

// Allowlists as sets, built once per route (the resolved arrays are frozen and live as long as the route).
const allowSets = new WeakMap<readonly string[], ReadonlySet<string>>();
function allowSetOf(list: readonly string[]): ReadonlySet<string> {
  let set = allowSets.get(list);
  if (!set) {
    set = new Set(list);
    allowSets.set(list, set);
  }
  return set;
}

// What nearly every request and response says: answered from these (shared, never changed), not a new set.
const KEEP_ALIVE_NAMED: ReadonlySet<string> = new Set(['keep-alive']);
const CLOSE_NAMED: ReadonlySet<string> = new Set(['close']);

/** The header names a `Connection` header lists (hop-by-hop by declaration), or undefined. */
function connectionNamed(headers: IncomingHttpHeaders, upgrade: boolean): ReadonlySet<string> | undefined {
  const connection = headers.connection;
  if (typeof connection !== 'string' || connection === '') return undefined;
  if (connection === 'keep-alive') return KEEP_ALIVE_NAMED;
  if (connection === 'close') return CLOSE_NAMED;
  const named = new Set<string>();
  for (const name of connection.split(',')) {
    const key = name.trim().toLowerCase();
    if (key !== '' && !(upgrade && UPGRADE_HEADERS.has(key))) named.add(key);
  }
  return named;
}

/**
 * True for a request header (lower-case name) that goes upstream: not listed in `Connection`, not a
 * credential, hop-by-hop or steering header (P2a), and in allowlist mode listed or framing. The one
 * decision behind both {@link forwardRequestHeaders} and {@link prepareRequestHeaders}.
 */
function keepRequestHeader(
  name: string,
  upgrade: boolean,
  allow: ReadonlySet<string> | undefined,
  named: ReadonlySet<string> | undefined,
): boolean {
  if (named?.has(name)) return false;
  if (upgrade && (allow ? HANDSHAKE_HEADERS : UPGRADE_HEADERS).has(name)) return true;
  // Validation keeps never-forwarded names out of the allowlist (options.ts).
  if (allow) return allow.has(name) || FRAMING_HEADERS.has(name);
  return !DROPPED_REQUEST_HEADERS.has(name) && !isSteeringKey(name);
}

// `Bearer <token>` per token, so a token used for many calls is one flat string: a fresh concatenation
// per call would be copied again (flattened) by the client's header-value check on every call. Bounded
// in size, and emptied a minute after its first entry, so a token's plaintext does not linger here
// (the token cache keeps decrypted records five minutes at most).
const BEARER_MAX = 10_000;
const BEARER_MS = 60_000;
const bearerValues = new Map<string, string>();
let forgetScheduled = false;
function forgetBearers(): void {
  bearerValues.clear();
  forgetScheduled = false;
}
function bearer(accessToken: string): string {
  let value = bearerValues.get(accessToken);
  if (value === undefined) {
    if (bearerValues.size >= BEARER_MAX) bearerValues.clear();
    value = `Bearer ${accessToken}`;
    bearerValues.set(accessToken, value);
    if (!forgetScheduled) {
      forgetScheduled = true;
      setTimeout(forgetBearers, BEARER_MS).unref();
    }
  }
  return value;
}

/**
 * The request headers for the upstream, as a new object (the request's own stay as the browser sent
 * them): every header {@link keepRequestHeader} keeps, minus `Transfer-Encoding` (the client frames the
 * body itself), then `Host` (the upstream's own), `X-Forwarded-*` when the route asks for it
 * (`policy.xForwarded`; `remoteAddress` is the TCP peer of this BFF) and the `Authorization` the route
 * calls for. Built by copying what is kept rather than copying all and deleting: a `delete` turns the
 * object into a slow dictionary, on every proxied call.
 */
export function forwardRequestHeaders(
  source: IncomingHttpHeaders,
  host: string,
  forwarded: ForwardedFor,
  remoteAddress: string | undefined,
  accessToken: string | undefined,
  policy: HeaderPolicy,
): IncomingHttpHeaders {
  const named = connectionNamed(source, false);
  const allow = policy.forwardHeaders ? allowSetOf(policy.forwardHeaders) : undefined;
  const out: IncomingHttpHeaders = {};
  for (const name in source) {
    if (name === 'transfer-encoding' || name === 'host') continue;
    if (keepRequestHeader(name, false, allow, named)) out[name] = source[name];
  }
  out.host = host;
  if (policy.xForwarded) {
    out['x-forwarded-proto'] = forwarded.proto;
    out['x-forwarded-host'] = forwarded.host;
    if (remoteAddress !== undefined) out['x-forwarded-for'] = remoteAddress;
  }
  if (accessToken !== undefined) out.authorization = bearer(accessToken);
  return out;
}

/**
 * Rewrites the incoming request's headers in place for the upstream (WebSocket handshakes, which are
 * forwarded as the request itself): drops every header {@link keepRequestHeader} does not keep, then
 * sets `X-Forwarded-*` when the route asks for it (`policy.xForwarded`; `remoteAddress` is the TCP peer
 * of this BFF) and the `Authorization` the route calls for. Without `policy`: no allowlist and no
 * `X-Forwarded-*`.
 */
export function prepareRequestHeaders(
  headers: IncomingHttpHeaders,
  forwarded: ForwardedFor,
  remoteAddress: string | undefined,
  accessToken: string | undefined,
  upgrade = false,
  policy: HeaderPolicy = DEFAULT_POLICY,
): void {
  const named = connectionNamed(headers, upgrade);
  const allow = policy.forwardHeaders ? allowSetOf(policy.forwardHeaders) : undefined;
  for (const name of Object.keys(headers)) {
    if (!keepRequestHeader(name, upgrade, allow, named)) delete headers[name];
  }
  if (policy.xForwarded) {
    headers['x-forwarded-proto'] = forwarded.proto;
    headers['x-forwarded-host'] = forwarded.host;
    if (remoteAddress !== undefined) headers['x-forwarded-for'] = remoteAddress;
  }
  if (accessToken !== undefined) headers.authorization = bearer(accessToken);
}

/** The upstream's response headers minus the ones the browser must not get. */
export function filterResponseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const named = connectionNamed(headers, false);
  for (const name in headers) {
    if (DROPPED_RESPONSE_HEADERS.has(name) || named?.has(name)) continue;
    // The BFF's origin has no CORS policy (SECURITY X2); an upstream must not grant one on its behalf.
    if (name.startsWith('access-control-')) continue;
    const value = headers[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/**
 * `WWW-Authenticate: Bearer … error="invalid_token"` (RFC 6750 §3.1), or the same under the `DPoP`
 * scheme (RFC 9449 §7.1): the token itself was refused.
 */
export function isInvalidTokenChallenge(header: string | undefined): boolean {
  return (
    header !== undefined &&
    /^\s*(?:bearer|dpop)\b/i.test(header) &&
    /\berror\s*=\s*"?invalid_token"?/i.test(header)
  );
}
