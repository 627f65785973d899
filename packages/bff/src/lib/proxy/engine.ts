// The remote-API proxy engine (SECURITY P1–P9, X1, X4): one call runs the request path top to bottom —
// match route (path.ts) → check request (route.ts) → rate bucket and session → token → forward and map
// the response (call.ts); the steps between are steps.ts. Built once at start-up: the route table, one keep-alive undici Pool per
// upstream origin (upstreams.ts) and everything a call needs that does not depend on the call. The
// session and the tokens come through one small interface (ProxyTokens); the engine never reads a
// store or a cookie itself.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { createNonceCache } from '../dpop/nonces.js';
import { type BffError, toBffError } from '../errors.js';
import { rejectUpgrade, sendError } from '../http/problem.js';
import type { Logger } from '../logger.js';
import { type CallEnv, ProxyCall } from './call.js';
import { type ForwardedFor, forwardRequestHeaders, prepareRequestHeaders } from './headers.js';
import type { ResolvedRemoteApi } from './options.js';
import { RouteTable } from './path.js';
import {
  type CompiledRoute,
  compileRoute,
  ERR,
  RETRY_METHODS,
  refusal,
  withinHeaderLimits,
} from './route.js';
import { authorizeBound, authorizeBoundAsync, replayableBody } from './sender.js';
import { createCallSteps, type ProxyRateLimiter, type ProxyTokens, RateFailure } from './steps.js';
import { createUpstreams, type Upstreams } from './upstreams.js';

/** Everything the engine needs, resolved by the caller once. */
export interface ProxyEngineOptions<S> {
  readonly routes: readonly ResolvedRemoteApi[];
  /** The BFF's public origin, e.g. `https://app.example`: X-Forwarded-Proto/Host, the WebSocket Origin check, P8. */
  readonly publicOrigin: string;
  readonly tokens: ProxyTokens<S>;
  readonly logger: Logger;
  /** Without it, routes' `rateLimit` settings are not enforced. */
  readonly rateLimiter?: ProxyRateLimiter | undefined;
}

/** The proxy's entry points. */
export interface ProxyEngine {
  /** Express-style middleware: proxies declared prefixes, calls `next()` for everything else. */
  handle(
    req: IncomingMessage & { originalUrl?: string },
    res: ServerResponse,
    next: (err?: unknown) => void,
  ): void;
  /** The same without Express: true when the request is one of the engine's (answered), false if not. */
  take(req: IncomingMessage & { originalUrl?: string }, res: ServerResponse): boolean;
  /** `server.on('upgrade')` helper: true when it took the socket (proxied or refused). */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  /** Closes the keep-alive pools (for tests and graceful shutdown). */
  close(): void;
}

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

/** Builds the proxy engine; call once per BFF. */
export function createProxyEngine<S>(options: ProxyEngineOptions<S>): ProxyEngine {
  const { tokens, logger, rateLimiter } = options;
  const { senderOf, sessionFor, tokenFor, consumeRate } = createCallSteps(tokens, rateLimiter);
  const publicUrl = new URL(options.publicOrigin);
  const publicOrigin = publicUrl.origin;
  const forwarded: ForwardedFor = Object.freeze({
    proto: publicUrl.protocol.slice(0, -1),
    host: publicUrl.host,
  });
  const upstreams: Upstreams = createUpstreams(options.routes.map((api) => api.upstreamOrigin));
  const table = new RouteTable(options.routes.map((api) => compileRoute(api, options.routes, logger)));
  const nonces = createNonceCache();

  function fail(res: ServerResponse, err: BffError, headers?: OutgoingHttpHeaders): void {
    if (err.status >= 500) logger.warn({ code: err.code }, 'remote API call failed');
    sendError(res, err, headers);
  }

  const env: CallEnv = {
    upstreams,
    logger,
    publicOrigin,
    securityHeaders:
      publicUrl.protocol === 'https:'
        ? { ...DEFAULT_SECURITY_HEADERS, 'strict-transport-security': 'max-age=31536000' }
        : DEFAULT_SECURITY_HEADERS,
    freshUserToken: (session, route) => tokens.getUserToken(session as S, route.refreshTokenOptions),
    fail,
    nonces,
  };

  function take(req: IncomingMessage & { originalUrl?: string }, res: ServerResponse): boolean {
    const match = table.match(req.originalUrl ?? req.url ?? '');
    if (match.kind === 'none') return false;
    if (match.kind === 'invalid') {
      fail(res, ERR.badPath);
      return true;
    }
    const route = match.route;
    const method = req.method ?? 'GET';
    const contentLength = req.headers['content-length'];
    const chunked = req.headers['transfer-encoding'] !== undefined;
    const hasBody = chunked || (contentLength !== undefined && contentLength !== '0');
    const refused = refusal(route, req, method, hasBody, chunked);
    if (refused) {
      fail(res, refused, refused === ERR.method ? { allow: route.allowHeader } : undefined);
      return true;
    }
    void start(route, match.upstreamPath, req, res, method, hasBody, chunked);
    return true;
  }

  function failed(res: ServerResponse, err: unknown): void {
    const known = toBffError(err);
    if (known.code === 'ERR_BFF_INTERNAL')
      logger.error({ err: err instanceof Error ? err.name : typeof err }, 'remote API call failed');
    fail(res, known);
  }

  function handle(
    req: IncomingMessage & { originalUrl?: string },
    res: ServerResponse,
    next: (err?: unknown) => void,
  ): void {
    if (!take(req, res)) next();
  }

  /** The rest of a call, once the route checks passed; never rejects (a failure is answered). */
  async function start(
    route: CompiledRoute,
    upstreamPath: string,
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    hasBody: boolean,
    chunked: boolean,
  ): Promise<void> {
    try {
      // The bucket is taken beside the session read (both leave in this tick: on a shared store, one
      // pipelined round trip) and its answer read after the token step; a store failure on either is 503.
      const cookie = req.headers.cookie;
      const rate = consumeRate(route, cookie);
      const session = await sessionFor(route, cookie);
      const token = await tokenFor(route, session);
      if (rate !== undefined) {
        const decision = await rate;
        if (decision instanceof RateFailure) throw decision.err;
        if (decision && !decision.allowed) {
          fail(res, ERR.rateLimited, {
            'retry-after': String(Math.max(1, Math.ceil(decision.retryAfter))),
          });
          return;
        }
      }
      if (res.destroyed) return;
      const sender = senderOf(route, upstreamPath, token, session);
      // A new object: the request's own headers stay as the browser sent them.
      const headers = forwardRequestHeaders(
        req.headers,
        route.host,
        forwarded,
        req.socket.remoteAddress,
        sender ? undefined : token,
        route.api,
      );
      if (sender) await authorizeBoundAsync(headers, sender, method, nonces);
      if (!withinHeaderLimits(headers, route.api)) {
        fail(res, ERR.headersTooLarge);
        return;
      }
      const retryable = !hasBody && RETRY_METHODS.has(method);
      // A DPoP-bound call may have to go again with the upstream's nonce: a small body is read first
      // so it can (sender.ts); anything larger streams.
      let replayBody: Buffer | null | undefined;
      try {
        replayBody = sender && (await replayableBody(req, hasBody, chunked));
      } catch {
        res.destroy(); // the browser went away before sending the whole body: nobody to answer
        return;
      }
      if (res.destroyed) return;
      const call = new ProxyCall(
        env,
        route,
        req,
        res,
        upstreamPath,
        method,
        headers,
        retryable ? session : undefined,
        retryable,
        sender,
        replayBody,
      );
      call.send(replayBody ?? (hasBody ? (chunked ? call.limitedBody() : req) : null), false);
    } catch (err) {
      failed(res, err);
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
      const cookie = req.headers.cookie;
      const rate = consumeRate(route, cookie);
      const session = await sessionFor(route, cookie);
      const token = await tokenFor(route, session);
      const decision = await rate;
      if (decision instanceof RateFailure) throw decision.err;
      if (decision && !decision.allowed) throw ERR.rateLimited;
      if (socket.destroyed) return;
      const sender = senderOf(route, match.upstreamPath, token, session);
      prepareRequestHeaders(
        req.headers,
        forwarded,
        req.socket.remoteAddress,
        sender ? undefined : token,
        true,
        route.api,
      );
      // The handshake is an HTTP GET to the upstream's http(s) URL: that is what the proof names.
      if (sender) authorizeBound(req.headers, sender, 'GET', nonces);
      req.url = match.upstreamPath;
      forward(req, socket, head);
    })().catch((err: unknown) => rejectUpgrade(socket, toBffError(err)));
    return true;
  }

  function close(): void {
    void upstreams.close();
  }

  return { handle, take, upgrade, close };
}
