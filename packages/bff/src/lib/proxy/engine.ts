// The remote-API proxy engine (SECURITY P1–P9, X1, X4): one call runs the request path top to bottom —
// match route (path.ts) → check request (route.ts) → rate bucket and session → token → forward and map
// the response (call.ts). Built once at start-up: the route table, one keep-alive undici Pool per
// upstream origin (upstreams.ts) and everything a call needs that does not depend on the call. The
// session and the tokens come through one small interface (ProxyTokens); the engine never reads a
// store or a cookie itself.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { createNonceCache } from '../dpop/nonces.js';
import { type BffError, toBffError } from '../errors.js';
import { rejectUpgrade, sendError } from '../http/problem.js';
import type { Logger } from '../logger.js';
import type { RateDecision } from '../store/types.js';
import { type CallEnv, ProxyCall } from './call.js';
import { type ForwardedFor, forwardRequestHeaders, prepareRequestHeaders } from './headers.js';
import type { ResolvedRemoteApi } from './options.js';
import { RouteTable } from './path.js';
import {
  type ClientTokenOptions,
  type CompiledRoute,
  compileRoute,
  ERR,
  RETRY_METHODS,
  refusal,
  type UserTokenOptions,
  withinHeaderLimits,
} from './route.js';
import { authorizeBound, bindSender, type ProofSigner, replayableBody } from './sender.js';
import { createUpstreams, type Upstreams } from './upstreams.js';

/**
 * The session and token steps, as the proxy calls them. `S` is the loaded session value the BFF passes
 * from the session step to the token step (LoadedSession); the engine only carries it along.
 */
export interface ProxyTokens<S> {
  /** The live session a Cookie header names, or undefined; throws BffError (503) when the store fails. */
  loadSession(cookieHeader: string | undefined): Promise<S | undefined>;
  /** The session's access token for the route's resource (refreshed when due); throws BffError 401/502/503. */
  getUserToken(session: S, options: UserTokenOptions): Promise<string>;
  /** A client-credentials token (token-manager); throws BffError 401/503. */
  getClientToken(options: ClientTokenOptions): Promise<string>;
  /**
   * The session's DPoP key when its user tokens are DPoP-bound (SECURITY D1): calls then carry
   * `Authorization: DPoP` and a proof. Undefined (or absent): Bearer.
   */
  senderKey?(session: S): ProofSigner | undefined;
}

/**
 * Per-session rate limiting (SECURITY P7): takes one call from the bucket `bucket` of the session the
 * Cookie header names (see SessionStore.consumeRate); undefined when the request carries no session.
 * It reads the signed cookie only, so it runs beside the session read (one pipelined round trip).
 */
export type ProxyRateLimiter = (
  cookieHeader: string | undefined,
  bucket: string,
  capacity: number,
  refillPerSecond: number,
) => Promise<RateDecision | undefined>;

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

/** A failed rate-bucket call, carried as a value until the call reads its bucket's answer. */
class RateFailure {
  constructor(readonly err: unknown) {}
}
const asRateFailure = (err: unknown) => new RateFailure(err);

/** Builds the proxy engine; call once per BFF. */
export function createProxyEngine<S>(options: ProxyEngineOptions<S>): ProxyEngine {
  const { tokens, logger, rateLimiter } = options;
  const publicUrl = new URL(options.publicOrigin);
  const publicOrigin = publicUrl.origin;
  const forwarded: ForwardedFor = Object.freeze({
    proto: publicUrl.protocol.slice(0, -1),
    host: publicUrl.host,
  });
  const upstreams: Upstreams = createUpstreams(options.routes.map((api) => api.upstreamOrigin));
  const table = new RouteTable(options.routes.map((api) => compileRoute(api, logger)));
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

  /** D1: the DPoP binding of a call that sends `session`'s user token, when that token is bound. */
  const senderOf = (route: CompiledRoute, path: string, token: string | undefined, session: S | undefined) =>
    bindSender(session && tokens.senderKey?.(session), route.api.upstreamOrigin, path, token);

  /** The session step, where the route's token kind looks at a session (not for `none` and `client`). */
  function sessionFor(
    route: CompiledRoute,
    cookieHeader: string | undefined,
  ): Promise<S | undefined> | undefined {
    const kind = route.api.token;
    return kind === 'none' || kind === 'client' ? undefined : tokens.loadSession(cookieHeader);
  }

  /**
   * The token step: what this route sends, given the session step's result (undefined: no token).
   * Throws BffError (401/503).
   */
  function tokenFor(route: CompiledRoute, session: S | undefined): Promise<string> | undefined {
    const kind = route.api.token;
    if (kind === 'none') return undefined;
    if (kind === 'client') return tokens.getClientToken(route.clientTokenOptions);
    if (session !== undefined) return tokens.getUserToken(session, route.userTokenOptions);
    if (kind === 'user') throw ERR.noSession;
    if (kind === 'user-or-client') return tokens.getClientToken(route.clientTokenOptions);
    return undefined; // user-or-none, anonymous
  }

  /**
   * SECURITY P7: one call from the session's bucket for this route (undefined when not limited). The
   * promise never rejects: a failure arrives wrapped as a RateFailure value, so the bucket can be taken
   * beside the session read and awaited after the token step without ever being an unhandled rejection.
   */
  function consumeRate(
    route: CompiledRoute,
    cookieHeader: string | undefined,
  ): Promise<RateDecision | RateFailure | undefined> | undefined {
    const limit = route.api.rateLimit;
    if (!limit || !rateLimiter) return undefined;
    const taken = rateLimiter(cookieHeader, route.api.prefix, limit.burst, limit.perSecond);
    return taken.then(undefined, asRateFailure);
  }

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
      if (sender) authorizeBound(headers, sender, method, nonces);
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
