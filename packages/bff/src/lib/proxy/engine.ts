// The remote-API proxy engine (SECURITY P1–P9, X1, X4). Built once at start-up: the route table, one
// keep-alive undici Pool per upstream origin (upstreams.ts) and everything a request needs that does not
// depend on the request. Per call it matches the raw target, runs the cheap checks (path, method, CSRF
// header, content type, body and header limits), takes one call from the session's rate bucket, gets
// the token, and sends a copy of the request headers, rewritten, with the body streamed, straight to the
// upstream. The response streams back through `ProxyCall`, which also carries the two retries: one
// forced refresh after an `invalid_token` 401 (P6), and one fresh connection after a reused keep-alive
// connection was found closed.
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import { Transform } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Logger } from '../context.js';
import { BffError } from '../errors.js';
import type { RateDecision } from '../store/types.js';
import {
  type ForwardedFor,
  filterResponseHeaders,
  isInvalidTokenChallenge,
  prepareRequestHeaders,
} from './headers.js';
import type { ResolvedRemoteApi } from './options.js';
import { RouteTable } from './path.js';
import { decideLocation } from './redirects.js';
import { rejectUpgrade, sendProblem, toBffError } from './respond.js';
import { createUpgradeForwarder, type UpgradeForwarder } from './upgrade.js';
import { createUpstreams, type Upstreams } from './upstreams.js';

/** Where the proxy gets tokens (the BffContext's functions, narrowed to what the proxy calls). */
export interface ProxyTokenSource {
  hasUser(req: IncomingMessage): Promise<boolean>;
  getUserAccessToken(
    req: IncomingMessage,
    options: { forceRefresh?: boolean; resource?: string },
  ): Promise<string>;
  getClientAccessToken(options: { resource?: string; scope?: string }): Promise<string>;
}

/**
 * Per-session rate limiting (SECURITY P7): takes one call from the bucket `bucket` of the request's
 * session (see SessionStore.consumeRate); undefined when the request carries no session to count.
 */
export type ProxyRateLimiter = (
  req: IncomingMessage,
  bucket: string,
  capacity: number,
  refillPerSecond: number,
) => Promise<RateDecision | undefined>;

/** Everything the engine needs, resolved by the caller once. */
export interface ProxyEngineOptions {
  readonly routes: readonly ResolvedRemoteApi[];
  /** The BFF's public origin, e.g. `https://app.example`: X-Forwarded-Proto/Host, the WebSocket Origin check, P8. */
  readonly publicOrigin: string;
  readonly tokens: ProxyTokenSource;
  readonly logger: Logger;
  /** Without it, routes' `rateLimit` settings are not enforced. */
  readonly rateLimiter?: ProxyRateLimiter | undefined;
}

/** The proxy's two entry points. */
export interface ProxyEngine {
  /** Express-style middleware: proxies declared prefixes, calls `next()` for everything else. */
  handle(
    req: IncomingMessage & { originalUrl?: string },
    res: ServerResponse,
    next: (err?: unknown) => void,
  ): void;
  /** `server.on('upgrade')` helper: true when it took the socket (proxied or refused). */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  /** Closes the keep-alive pools (for tests and graceful shutdown). */
  close(): void;
}

interface CompiledRoute {
  readonly api: ResolvedRemoteApi;
  readonly methods: ReadonlySet<string> | undefined;
  readonly allowHeader: string;
  readonly simpleAllowed: ReadonlySet<string>;
  readonly timeoutMs: number;
  /** `Host` sent upstream (the upstream's own, as `changeOrigin` did). */
  readonly host: string;
  readonly upgrade: UpgradeForwarder | undefined;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/**
 * Methods sent again — only without a body, so nothing needs buffering — after an `invalid_token`
 * challenge (P6) or a reset of a reused connection before any response byte. A POST never is.
 */
const RETRY_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE']);
/**
 * Refused unless a route lists it in `methods`: TRACE makes an upstream echo the request back, access
 * token included (a browser cannot send it; any other client holding the cookie could). CONNECT never
 * reaches a request handler (Node emits 'connect').
 */
const UNLISTED_METHODS = new Set(['TRACE']);
const SIMPLE_TYPES = new Set(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data']);
/** Connection-level failures that, before any response byte, mean "the upstream closed this socket". */
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'UND_ERR_SOCKET']);
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT']);

/**
 * Headers helmet would put on a response, for proxied responses (the host's helmet does not see them
 * when the BFF answers first). Only where the upstream set none of its own, except `nosniff`, always:
 * an API body must never be sniffed into HTML on the BFF's origin.
 */
const DEFAULT_SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'cross-origin-resource-policy': 'same-origin',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
});

// The fixed answers, built once.
const ERR = {
  badPath: new BffError('ERR_BFF_PROXY_BAD_PATH', 'unsafe or ambiguous path'),
  notFound: new BffError('ERR_BFF_PROXY_NOT_FOUND', 'no WebSocket on this route'),
  method: new BffError('ERR_BFF_PROXY_METHOD', 'method not allowed on this route'),
  csrf: new BffError('ERR_BFF_CSRF', 'X-CSRF header required'),
  contentType: new BffError('ERR_BFF_PROXY_CONTENT_TYPE', 'simple content type on a state-changing call'),
  origin: new BffError('ERR_BFF_PROXY_ORIGIN', 'WebSocket Origin is not the BFF origin'),
  bodyTooLarge: new BffError('ERR_BFF_PROXY_BODY_TOO_LARGE', 'request body larger than maxBodySize'),
  headersTooLarge: new BffError('ERR_BFF_PROXY_HEADERS_TOO_LARGE', 'too many request headers'),
  rateLimited: new BffError('ERR_BFF_RATE_LIMITED', 'rate limit exceeded'),
  unavailable: new BffError('ERR_BFF_UPSTREAM_UNAVAILABLE', 'upstream unavailable'),
  redirect: new BffError('ERR_BFF_UPSTREAM_REDIRECT', 'upstream redirect refused'),
  timeout: new BffError('ERR_BFF_UPSTREAM_TIMEOUT', 'upstream timed out'),
} satisfies Record<string, BffError>;

/** Why an upstream call was stopped by us (never shown to anyone; tells onResponseError what happened). */
class Stop extends Error {
  constructor(readonly why: 'client-gone' | 'body-too-large' | 'answered') {
    super(why);
  }
}

/** Builds the proxy engine; call once per BFF. */
export function createProxyEngine(options: ProxyEngineOptions): ProxyEngine {
  const { tokens, logger, rateLimiter } = options;
  const publicUrl = new URL(options.publicOrigin);
  const publicOrigin = publicUrl.origin;
  const forwarded: ForwardedFor = Object.freeze({
    proto: publicUrl.protocol.slice(0, -1),
    host: publicUrl.host,
  });
  const securityHeaders: Readonly<Record<string, string>> =
    publicUrl.protocol === 'https:'
      ? { ...DEFAULT_SECURITY_HEADERS, 'strict-transport-security': 'max-age=31536000' }
      : DEFAULT_SECURITY_HEADERS;
  const securityHeaderNames = Object.keys(securityHeaders);

  const upstreams: Upstreams = createUpstreams(options.routes.map((api) => api.upstreamOrigin));
  const table = new RouteTable(options.routes.map(compileRoute));

  function compileRoute(api: ResolvedRemoteApi): CompiledRoute {
    return {
      api,
      methods: api.methods ? new Set(api.methods) : undefined,
      allowHeader: api.methods ? api.methods.join(', ') : 'GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE',
      simpleAllowed: new Set(api.allowSimpleContentTypes),
      timeoutMs: Math.round(api.timeout * 1000),
      host: new URL(api.upstreamOrigin).host,
      upgrade: api.websocket ? createUpgradeForwarder(api, logger) : undefined,
    };
  }

  /** The token this route sends, or undefined for none; throws the context's BffErrors (401/503). */
  async function tokenFor(
    api: ResolvedRemoteApi,
    req: IncomingMessage,
  ): Promise<[string | undefined, boolean]> {
    switch (api.token) {
      case 'none':
        return [undefined, false];
      case 'user':
        return [await tokens.getUserAccessToken(req, { resource: api.resource }), true];
      case 'client':
        return [await tokens.getClientAccessToken({ resource: api.resource, scope: api.scope }), false];
      case 'user-or-client':
        if (await tokens.hasUser(req))
          return [await tokens.getUserAccessToken(req, { resource: api.resource }), true];
        return [await tokens.getClientAccessToken({ resource: api.resource, scope: api.scope }), false];
      case 'user-or-none':
        if (await tokens.hasUser(req))
          return [await tokens.getUserAccessToken(req, { resource: api.resource }), true];
        return [undefined, false];
    }
  }

  /** SECURITY P7: one call from the session's bucket for this route (undefined when not limited). */
  function consumeRate(
    route: CompiledRoute,
    req: IncomingMessage,
  ): Promise<RateDecision | undefined> | undefined {
    const limit = route.api.rateLimit;
    if (!limit || !rateLimiter) return undefined;
    return rateLimiter(req, route.api.prefix, limit.burst, limit.perSecond);
  }

  function rateLimited(res: ServerResponse, decision: RateDecision): void {
    fail(res, ERR.rateLimited, { 'retry-after': String(Math.max(1, Math.ceil(decision.retryAfter))) });
  }

  function fail(res: ServerResponse, err: BffError, headers?: OutgoingHttpHeaders): void {
    if (err.status >= 500) logger.warn({ code: err.code }, 'remote API call failed');
    sendProblem(res, err, headers);
  }

  /** The checks that need neither the session nor the upstream (SECURITY P1, X1, X4, P9). */
  function refusal(
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

  function handle(
    req: IncomingMessage & { originalUrl?: string },
    res: ServerResponse,
    next: (err?: unknown) => void,
  ): void {
    const match = table.match(req.originalUrl ?? req.url ?? '');
    if (match.kind === 'none') {
      next();
      return;
    }
    if (match.kind === 'invalid') {
      fail(res, ERR.badPath);
      return;
    }
    const route = match.route;
    const method = req.method ?? 'GET';
    const contentLength = req.headers['content-length'];
    const chunked = req.headers['transfer-encoding'] !== undefined;
    const hasBody = chunked || (contentLength !== undefined && contentLength !== '0');
    const refused = refusal(route, req, method, hasBody, chunked);
    if (refused) {
      fail(res, refused, refused === ERR.method ? { allow: route.allowHeader } : undefined);
      return;
    }
    start(route, match.upstreamPath, req, res, method, hasBody, chunked).catch((err: unknown) => {
      const known = toBffError(err);
      if (known.code === 'ERR_BFF_INTERNAL')
        logger.error({ err: err instanceof Error ? err.name : typeof err }, 'remote API call failed');
      fail(res, known);
    });
  }

  async function start(
    route: CompiledRoute,
    upstreamPath: string,
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    hasBody: boolean,
    chunked: boolean,
  ): Promise<void> {
    // The bucket and the token in parallel: on a shared store both are one round trip (pipelined).
    const rate = consumeRate(route, req);
    const [decision, [token, userToken]] = await Promise.all([rate, tokenFor(route.api, req)]);
    if (decision && !decision.allowed) {
      rateLimited(res, decision);
      return;
    }
    if (res.destroyed) return;
    // A copy: the request's own headers stay as the browser sent them (the P6 retry reads the cookie).
    const headers: IncomingHttpHeaders = { ...req.headers };
    prepareRequestHeaders(headers, forwarded, req.socket.remoteAddress, token, false, route.api);
    // The client frames the body itself (chunked when there is no Content-Length).
    delete headers['transfer-encoding'];
    headers.host = route.host;
    if (!withinHeaderLimits(headers, route.api)) {
      fail(res, ERR.headersTooLarge);
      return;
    }
    const retryable = !hasBody && RETRY_METHODS.has(method);
    const call = new ProxyCall(
      route,
      req,
      res,
      upstreamPath,
      method,
      headers,
      userToken && retryable,
      retryable,
    );
    call.send(hasBody ? (chunked ? call.limitedBody() : req) : null, false);
  }

  /**
   * One proxied call: the undici dispatch handler that streams the response to the browser, and the
   * state of its retries. One object per call, methods on the prototype.
   */
  class ProxyCall implements Dispatcher.DispatchHandler {
    controller: Dispatcher.DispatchController | undefined;
    /** Reading the body of an invalid_token 401 to throw it away, then refresh and retry (P6). */
    discarding = false;
    /** We answered or stopped the call ourselves; later callbacks only clean up. */
    settled = false;
    bodyTooLarge = false;
    resetRetried = false;

    constructor(
      readonly route: CompiledRoute,
      readonly req: IncomingMessage,
      readonly res: ServerResponse,
      readonly upstreamPath: string,
      readonly method: string,
      readonly headers: IncomingHttpHeaders,
      /** A user token went out on an idempotent body-less call: a forced refresh can help once (P6). */
      public tokenRetry: boolean,
      /** Idempotent and body-less: may be sent again once after a reset before any response byte. */
      readonly retryable: boolean,
    ) {
      res.once('close', this.onClientClose);
    }

    /** The browser went away (or the response finished): stop the upstream call if it still runs. */
    onClientClose = (): void => {
      if (!this.res.writableFinished) this.stop('client-gone');
    };

    stop(why: 'client-gone' | 'body-too-large' | 'answered'): void {
      this.settled = true;
      this.controller?.abort(new Stop(why));
    }

    send(body: Readable | null, fresh: boolean): void {
      if (this.res.destroyed) return;
      const options: Dispatcher.DispatchOptions = {
        path: this.upstreamPath,
        method: this.method as Dispatcher.HttpMethod,
        headers: this.headers as Record<string, string | string[]>,
        body,
        headersTimeout: this.route.timeoutMs,
        bodyTimeout: 0,
      };
      if (fresh) upstreams.dispatchFresh(this.route.api.upstreamOrigin, options, this);
      else upstreams.dispatch(this.route.api.upstreamOrigin, options, this);
    }

    /** SECURITY P9 for chunked bodies: count as they stream; the chunk that crosses the limit is not sent. */
    limitedBody(): Readable {
      const limit = this.route.api.maxBodySize;
      let total = 0;
      const counter = new Transform({
        transform: (chunk: Buffer, _encoding, callback) => {
          total += chunk.length;
          if (total > limit) {
            this.bodyTooLarge = true;
            callback(new Stop('body-too-large'));
            return;
          }
          callback(null, chunk);
        },
      });
      counter.once('error', () => {
        this.req.unpipe(counter);
        // Read and drop the rest, so the browser gets to read the 413 (closing now would reset it).
        this.req.resume();
      });
      this.req.pipe(counter);
      return counter;
    }

    onRequestStart(controller: Dispatcher.DispatchController): void {
      this.controller = controller;
      if (this.settled) controller.abort(new Stop('answered'));
    }

    onResponseStart(
      controller: Dispatcher.DispatchController,
      status: number,
      headers: IncomingHttpHeaders,
    ): void {
      if (this.settled) return;
      if (status === 401 && this.tokenRetry && invalidToken(headers['www-authenticate'])) {
        this.tokenRetry = false;
        this.discarding = true; // read the 401's body to the end so the socket goes back to the pool
        return;
      }
      const out = filterResponseHeaders(headers);
      // undici gives a repeated header as an array (decideLocation refuses or drops those).
      const location = headers.location as string | string[] | undefined;
      if (location !== undefined) {
        const decision = decideLocation(publicOrigin, this.route.api, status, location, this.upstreamPath);
        if (decision.kind === 'refuse') {
          this.settled = true;
          controller.abort(new Stop('answered'));
          logger.warn({ prefix: this.route.api.prefix, status }, 'remote API redirect refused');
          sendProblem(this.res, ERR.redirect);
          return;
        }
        if (decision.kind === 'rewrite') out.location = decision.location;
        else if (decision.kind === 'drop') delete out.location;
      }
      for (const name of securityHeaderNames) if (out[name] === undefined) out[name] = securityHeaders[name];
      out['x-content-type-options'] = 'nosniff';
      delete out['x-powered-by'];
      // Express may have set X-Powered-By on the response before the BFF took it.
      if (this.res.hasHeader('x-powered-by')) this.res.removeHeader('x-powered-by');
      this.res.writeHead(status, out);
    }

    onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
      if (this.discarding || this.settled) return;
      if (!this.res.write(chunk)) {
        controller.pause();
        this.res.once('drain', () => controller.resume());
      }
    }

    onResponseEnd(): void {
      if (this.discarding) {
        this.discarding = false;
        void this.retryWithFreshToken();
        return;
      }
      if (!this.settled) this.res.end();
    }

    onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
      if (this.discarding) {
        // The 401 itself arrived; only its body broke off. The refresh and retry still apply.
        this.discarding = false;
        void this.retryWithFreshToken();
        return;
      }
      if (this.bodyTooLarge) {
        this.settled = true;
        fail(this.res, ERR.bodyTooLarge);
        return;
      }
      if (this.settled) return;
      const res = this.res;
      if (res.headersSent) {
        // The upstream broke off mid-body: cut the browser's response too, a short body must not look complete.
        res.destroy();
        return;
      }
      const code = (err as { code?: unknown }).code;
      if (this.retryable && !this.resetRetried && typeof code === 'string' && RESET_CODES.has(code)) {
        // A keep-alive connection the upstream closed just as it was reused: nothing was answered, the
        // call is idempotent and has no body, so send it once more on a connection opened for it.
        this.resetRetried = true;
        logger.debug({ prefix: this.route.api.prefix, code }, 'remote API connection reset; retrying once');
        this.send(null, true);
        return;
      }
      this.settled = true;
      logger.warn({ prefix: this.route.api.prefix, code }, 'remote API call failed');
      sendProblem(res, typeof code === 'string' && TIMEOUT_CODES.has(code) ? ERR.timeout : ERR.unavailable);
    }

    /** SECURITY P6: one forced refresh, one retry; the request has no body, so nothing was buffered. */
    async retryWithFreshToken(): Promise<void> {
      let token: string;
      try {
        token = await tokens.getUserAccessToken(this.req, {
          forceRefresh: true,
          resource: this.route.api.resource,
        });
      } catch (err) {
        this.settled = true;
        fail(this.res, toBffError(err));
        return;
      }
      this.headers.authorization = `Bearer ${token}`;
      this.send(null, false);
    }
  }

  function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const match = table.match(req.url ?? '');
    if (match.kind === 'none') return false;
    // Upgrade sockets have no error listener of the server's any more; a reset must not crash us.
    socket.on('error', () => socket.destroy());
    if (match.kind === 'invalid') {
      rejectUpgrade(socket, ERR.badPath);
      return true;
    }
    const route = match.route;
    const forward = route.upgrade;
    if (!forward) {
      rejectUpgrade(socket, ERR.notFound);
      return true;
    }
    // CSRF for WebSockets is an Origin check: browsers always send Origin on a handshake and a page on
    // another origin cannot forge it (cross-site WebSocket hijacking).
    if (req.headers.origin !== publicOrigin) {
      rejectUpgrade(socket, ERR.origin);
      return true;
    }
    (async () => {
      const [decision, [token]] = await Promise.all([consumeRate(route, req), tokenFor(route.api, req)]);
      if (decision && !decision.allowed) throw ERR.rateLimited;
      if (socket.destroyed) return;
      prepareRequestHeaders(req.headers, forwarded, req.socket.remoteAddress, token, true, route.api);
      req.url = match.upstreamPath;
      forward(req, socket, head);
    })().catch((err: unknown) => rejectUpgrade(socket, toBffError(err)));
    return true;
  }

  function close(): void {
    void upstreams.close();
  }

  return { handle, upgrade, close };
}

/** True when any `WWW-Authenticate` challenge says `invalid_token` (RFC 6750 §3.1). */
function invalidToken(header: string | string[] | undefined): boolean {
  if (Array.isArray(header)) return header.some((value) => isInvalidTokenChallenge(value));
  return isInvalidTokenChallenge(header);
}

/** SECURITY P9: the headers about to go upstream (token included, cookie gone) within the route's limits. */
function withinHeaderLimits(headers: IncomingHttpHeaders, api: ResolvedRemoteApi): boolean {
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
