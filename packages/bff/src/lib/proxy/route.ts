// The route-check step of a remote-API call (SECURITY P1, P9, X1, X4): the compiled form of each
// declared remote API, and the checks that need neither the session nor the upstream. Each check
// answers a fixed BffError, built once.
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { BffError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ResolvedRemoteApi } from './options.js';
import { isUnderPrefix } from './path.js';
import type { LocationRoute } from './redirects.js';
import { createUpgradeForwarder, type UpgradeForwarder } from './upgrade.js';

/** Options for a user token (the route's resource), built once per route. */
export interface UserTokenOptions {
  readonly forceRefresh?: boolean;
  readonly resource?: string | undefined;
}

/** Options for a client-credentials token (the route's resource and scope), built once per route. */
export interface ClientTokenOptions {
  readonly resource?: string | undefined;
  readonly scope?: string | undefined;
}

/** A declared remote API with everything a call needs precomputed. */
export interface CompiledRoute {
  readonly api: ResolvedRemoteApi;
  readonly methods: ReadonlySet<string> | undefined;
  readonly allowHeader: string;
  readonly simpleAllowed: ReadonlySet<string>;
  readonly timeoutMs: number;
  /** undici's `bodyTimeout`: the longest silence between response-body bytes, 0 for none (P9). */
  readonly bodyTimeoutMs: number;
  /** `Host` sent upstream (the upstream's own, as `changeOrigin` did). */
  readonly host: string;
  readonly upgrade: UpgradeForwarder | undefined;
  readonly userTokenOptions: UserTokenOptions;
  readonly refreshTokenOptions: UserTokenOptions;
  readonly clientTokenOptions: ClientTokenOptions;
  /** What decides on the upstream's `Location` headers (P8). */
  readonly locationRoute: LocationRoute;
}

export const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);
/**
 * Methods sent again — only without a body, so nothing needs buffering — after an `invalid_token`
 * challenge (P6) or a reset of a reused connection before any response byte. A POST never is.
 */
export const RETRY_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE']);
/**
 * Refused unless a route lists it in `methods`: TRACE makes an upstream echo the request back, access
 * token included (a browser cannot send it; any other client holding the cookie could). CONNECT never
 * reaches a request handler (Node emits 'connect').
 */
const UNLISTED_METHODS = new Set(['TRACE']);
const SIMPLE_TYPES = new Set(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data']);

/** The fixed answers of the proxy, built once. */
export const ERR = {
  badPath: new BffError('ERR_BFF_PROXY_BAD_PATH', 'unsafe or ambiguous path'),
  notFound: new BffError('ERR_BFF_PROXY_NOT_FOUND', 'no WebSocket on this route'),
  method: new BffError('ERR_BFF_PROXY_METHOD', 'method not allowed on this route'),
  csrf: new BffError('ERR_BFF_CSRF', 'X-CSRF header required'),
  noSession: new BffError('ERR_BFF_NO_SESSION', 'no session'),
  contentType: new BffError('ERR_BFF_PROXY_CONTENT_TYPE', 'simple content type on a state-changing call'),
  origin: new BffError('ERR_BFF_PROXY_ORIGIN', 'WebSocket Origin is not the BFF origin'),
  bodyTooLarge: new BffError('ERR_BFF_PROXY_BODY_TOO_LARGE', 'request body larger than maxBodySize'),
  headersTooLarge: new BffError('ERR_BFF_PROXY_HEADERS_TOO_LARGE', 'too many request headers'),
  rateLimited: new BffError('ERR_BFF_RATE_LIMITED', 'rate limit exceeded'),
  unavailable: new BffError('ERR_BFF_UPSTREAM_UNAVAILABLE', 'upstream unavailable'),
  redirect: new BffError('ERR_BFF_UPSTREAM_REDIRECT', 'upstream redirect refused'),
  timeout: new BffError('ERR_BFF_UPSTREAM_TIMEOUT', 'upstream timed out'),
  dpopNonce: new BffError('ERR_BFF_UPSTREAM_DPOP_NONCE', 'upstream wants a DPoP nonce; body not replayable', {
    retryAfter: 1,
  }),
} satisfies Record<string, BffError>;

/** Compiles one resolved remote API (once, at start-up); `all` is every declared route, `api` among them. */
export function compileRoute(
  api: ResolvedRemoteApi,
  all: readonly ResolvedRemoteApi[],
  logger: Logger,
): CompiledRoute {
  const nestedPrefixes = all
    .map((other) => other.prefix)
    .filter((prefix) => prefix !== api.prefix && isUnderPrefix(prefix, api.prefix));
  return {
    api,
    methods: api.methods ? new Set(api.methods) : undefined,
    allowHeader: api.methods ? api.methods.join(', ') : 'GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE',
    simpleAllowed: new Set(api.allowSimpleContentTypes),
    timeoutMs: Math.round(api.timeout * 1000),
    bodyTimeoutMs: api.bodyTimeout === false ? 0 : Math.round(api.bodyTimeout * 1000),
    host: new URL(api.upstreamOrigin).host,
    upgrade: api.websocket ? createUpgradeForwarder(api, logger) : undefined,
    userTokenOptions: Object.freeze({ resource: api.resource }),
    refreshTokenOptions: Object.freeze({ forceRefresh: true, resource: api.resource }),
    clientTokenOptions: Object.freeze({ resource: api.resource, scope: api.scope }),
    locationRoute: Object.freeze({
      prefix: api.prefix,
      upstreamOrigin: api.upstreamOrigin,
      upstreamBasePath: api.upstreamBasePath,
      nestedPrefixes: Object.freeze(nestedPrefixes),
    }),
  };
}

/** The checks that need neither the session nor the upstream (SECURITY P1, X1, X4, P9). */
export function refusal(
  route: CompiledRoute,
  req: IncomingMessage,
  method: string,
  hasBody: boolean,
  chunked: boolean,
): BffError | undefined {
  const api = route.api;
  if (route.methods ? !route.methods.has(method) : UNLISTED_METHODS.has(method)) return ERR.method;
  // SECURITY X1: a static custom header a cross-site form or <img> cannot send. 401 like the rest of
  // the BFF (ERR_BFF_CSRF, the Duende contract), not X1's 403.
  if (api.csrf && req.headers['x-csrf'] !== '1') return ERR.csrf;
  if (!hasBody) return undefined;
  // SECURITY X4: state-changing calls with a type a cross-site form can send need an explicit
  // allowlist; a body without any type (a no-cors Blob) counts as simple too.
  if (!SAFE_METHODS.has(method)) {
    const type = mediaType(req.headers['content-type']);
    if (type === '' || (SIMPLE_TYPES.has(type) && !route.simpleAllowed.has(type))) return ERR.contentType;
  }
  // SECURITY P9: a declared length over the limit is refused before anything is sent (without
  // Transfer-Encoding, Node's parser has checked that Content-Length is a plain number).
  if (!chunked && Number(req.headers['content-length']) > api.maxBodySize) return ERR.bodyTooLarge;
  return undefined;
}

/** SECURITY P9: the headers about to go upstream (token included, cookie gone) within the route's limits. */
export function withinHeaderLimits(headers: IncomingHttpHeaders, api: ResolvedRemoteApi): boolean {
  let count = 0;
  let bytes = 0;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (typeof value === 'string') {
      count += 1;
      bytes += name.length + value.length;
    } else {
      count += value.length;
      for (const item of value) bytes += name.length + item.length;
    }
  }
  return count <= api.maxHeaderCount && bytes <= api.maxHeaderBytes;
}

/** `Text/Plain; charset=utf-8` → `text/plain`. */
function mediaType(value: string | undefined): string {
  if (value === undefined) return '';
  const semi = value.indexOf(';');
  return (semi === -1 ? value : value.slice(0, semi)).trim().toLowerCase();
}
