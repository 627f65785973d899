// The remote-API proxy engine (SECURITY P1–P6, X1, X4). Built once at start-up: the route table, one
// http-proxy-middleware instance per route and ONE keep-alive agent per upstream origin. Per request it
// matches the raw target, runs the cheap checks (path, method, CSRF header, content type), gets the
// token, rewrites the headers in place and hands the request to http-proxy, which streams both ways.
import { type ClientRequest, Agent as HttpAgent, type IncomingMessage, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Readable } from 'node:stream';
import { createProxyMiddleware, type Options, type Plugin, type RequestHandler } from 'http-proxy-middleware';
import type { Logger } from '../context.js';
import {
  type ForwardedFor,
  filterResponseHeaders,
  isInvalidTokenChallenge,
  prepareRequestHeaders,
} from './headers.js';
import type { ResolvedRemoteApi } from './options.js';
import { RouteTable } from './path.js';
import { asHttpError, ProxyErrorCode, rejectUpgrade, sendError } from './respond.js';

/** Where the proxy gets tokens (the BffContext's functions, narrowed to what the proxy calls). */
export interface ProxyTokenSource {
  hasUser(req: IncomingMessage): Promise<boolean>;
  getUserAccessToken(
    req: IncomingMessage,
    options: { forceRefresh?: boolean; resource?: string },
  ): Promise<string>;
  getClientAccessToken(options: { resource?: string; scope?: string }): Promise<string>;
}

/** Everything the engine needs, resolved by the caller once. */
export interface ProxyEngineOptions {
  readonly routes: readonly ResolvedRemoteApi[];
  /** The BFF's public origin, e.g. `https://app.example`: X-Forwarded-Proto/Host and the WebSocket Origin check. */
  readonly publicOrigin: string;
  readonly tokens: ProxyTokenSource;
  readonly logger: Logger;
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
  /** Closes the keep-alive agents (for tests and graceful shutdown). */
  close(): void;
}

type ProxyServer = Parameters<Plugin>[0];

interface CompiledRoute {
  readonly api: ResolvedRemoteApi;
  readonly handler: RequestHandler;
  /** The http-proxy server inside `handler`, captured through a plugin, for the one retry. */
  server: ProxyServer | undefined;
  readonly proxyOptions: Options;
  readonly methods: ReadonlySet<string> | undefined;
  readonly simpleAllowed: ReadonlySet<string>;
  readonly timeoutMs: number;
}

/** Per-request bookkeeping, hung off the request under a private symbol. */
interface RequestState {
  readonly route: CompiledRoute;
  /** A user token was sent, so a forced refresh can help (SECURITY P6). */
  readonly userToken: boolean;
  /** Idempotent and body-less: can be sent again without buffering (SECURITY P6). */
  readonly retryable: boolean;
  retried: boolean;
  timedOut: boolean;
  /** The browser's Cookie header, kept aside (it is stripped from req.headers) for the retry's refresh. */
  readonly cookie: string | undefined;
  timer: NodeJS.Timeout | undefined;
  proxyReq: ClientRequest | undefined;
}

const STATE = Symbol('gatehouse.proxy.state');
type ProxiedRequest = IncomingMessage & { [STATE]?: RequestState };

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Methods replayed once after an `invalid_token` challenge, and only without a body. A POST never is. */
const RETRY_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE']);
const SIMPLE_TYPES = new Set(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data']);

/** Builds the proxy engine; call once per BFF. */
export function createProxyEngine(options: ProxyEngineOptions): ProxyEngine {
  const { tokens, logger } = options;
  const publicUrl = new URL(options.publicOrigin);
  const publicOrigin = publicUrl.origin;
  const forwarded: ForwardedFor = Object.freeze({
    proto: publicUrl.protocol.slice(0, -1),
    host: publicUrl.host,
  });

  // One keep-alive agent per upstream origin, shared by every route to it (and by the retry).
  const agents = new Map<string, HttpAgent>();
  const agentFor = (origin: string): HttpAgent => {
    let agent = agents.get(origin);
    if (!agent) {
      agent = origin.startsWith('https:')
        ? new HttpsAgent({ keepAlive: true })
        : new HttpAgent({ keepAlive: true });
      agents.set(origin, agent);
    }
    return agent;
  };

  const compiled = options.routes.map((api) => compileRoute(api, agentFor(api.upstreamOrigin)));
  const table = new RouteTable(compiled);

  function compileRoute(api: ResolvedRemoteApi, agent: HttpAgent): CompiledRoute {
    const url = new URL(api.upstreamOrigin);
    const route: CompiledRoute = {
      api,
      server: undefined,
      // Filled in right below; http-proxy-middleware needs the options to build the handler.
      handler: undefined as unknown as RequestHandler,
      proxyOptions: {
        // A parsed target, so http-proxy does not re-parse a URL string on every request.
        target: {
          protocol: url.protocol,
          host: url.host,
          // Node wants IPv6 literals without brackets.
          hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
          port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
        },
        agent,
        changeOrigin: true,
        // req.url is already the exact upstream path: `toProxy` makes http-proxy use it as is instead of
        // running the legacy url.parse() on it per request.
        toProxy: true,
        xfwd: false,
        secure: true,
        // We write the response ourselves: to filter headers and to retry once on invalid_token.
        selfHandleResponse: true,
        // No default plugins (their error handler would echo the host and path to the browser).
        ejectPlugins: true,
        plugins: [
          (server) => {
            route.server = server;
            registerProxyEvents(server);
          },
        ],
      },
      methods: api.methods ? new Set(api.methods) : undefined,
      simpleAllowed: new Set(api.allowSimpleContentTypes),
      timeoutMs: Math.round(api.timeout * 1000),
    };
    (route as { handler: RequestHandler }).handler = createProxyMiddleware(route.proxyOptions);
    return route;
  }

  function registerProxyEvents(server: ProxyServer): void {
    server.on('proxyReq', (proxyReq, req) => {
      const state = (req as ProxiedRequest)[STATE];
      if (state) state.proxyReq = proxyReq;
    });
    server.on('proxyReqWs', (proxyReq, req) => {
      const state = (req as ProxiedRequest)[STATE];
      if (state) proxyReq.setTimeout(state.route.timeoutMs, () => proxyReq.destroy());
    });
    server.on('proxyRes', (proxyRes, req, res) => onProxyResponse(proxyRes, req as ProxiedRequest, res));
    server.on('error', (err, req, res) => {
      const state = (req as ProxiedRequest)[STATE];
      if (state) clearTimer(state);
      const code = (err as NodeJS.ErrnoException).code;
      logger.warn(
        { prefix: state?.route.api.prefix, code, timedOut: state?.timedOut ?? false },
        'remote API call failed',
      );
      if ('writeHead' in res) {
        if (state?.timedOut) sendError(res, 504, ProxyErrorCode.upstreamTimeout);
        else sendError(res, 502, ProxyErrorCode.upstreamUnavailable);
      } else {
        // A WebSocket: the handshake may be half done, so no HTTP answer is safe; just close.
        (res as Duplex).destroy();
      }
    });
  }

  function startTimer(state: RequestState, res: ServerResponse): void {
    state.timer = setTimeout(() => {
      state.timer = undefined;
      state.timedOut = true;
      // Destroying the outgoing request surfaces as a proxy 'error', which answers 504.
      if (state.proxyReq) state.proxyReq.destroy();
      else sendError(res, 504, ProxyErrorCode.upstreamTimeout);
    }, state.route.timeoutMs);
  }

  function clearTimer(state: RequestState): void {
    if (state.timer) {
      clearTimeout(state.timer);
      state.timer = undefined;
    }
  }

  function onProxyResponse(proxyRes: IncomingMessage, req: ProxiedRequest, res: ServerResponse): void {
    const state = req[STATE];
    if (!state) {
      proxyRes.destroy();
      return;
    }
    clearTimer(state);
    state.proxyReq = undefined;
    const status = proxyRes.statusCode ?? 502;
    if (
      status === 401 &&
      state.userToken &&
      state.retryable &&
      !state.retried &&
      isInvalidTokenChallenge(proxyRes.headers['www-authenticate'])
    ) {
      state.retried = true;
      proxyRes.resume(); // discard the 401's body; the socket goes back to the pool
      void retry(req, res, state);
      return;
    }
    if (res.writableEnded || res.destroyed) {
      proxyRes.destroy();
      return;
    }
    res.writeHead(status, filterResponseHeaders(proxyRes.headers));
    // Stop reading from the upstream when the browser goes away (long downloads, SSE), and cut the
    // browser's response when the upstream's breaks off: a truncated body must not look complete.
    res.once('close', () => {
      if (!proxyRes.complete) proxyRes.destroy();
    });
    proxyRes.once('close', () => {
      if (!proxyRes.complete) res.destroy();
    });
    proxyRes.pipe(res);
  }

  // SECURITY P6: one forced refresh, one retry. The request had no body, so an empty stream stands in
  // for it: nothing needs to be buffered.
  async function retry(req: ProxiedRequest, res: ServerResponse, state: RequestState): Promise<void> {
    let token: string;
    // The token source may read the session cookie from the request: put it back for this call only.
    if (state.cookie !== undefined) req.headers.cookie = state.cookie;
    try {
      token = await tokens.getUserAccessToken(req, {
        forceRefresh: true,
        resource: state.route.api.resource,
      });
    } catch (err) {
      answerTokenError(res, err);
      return;
    } finally {
      delete req.headers.cookie;
    }
    const server = state.route.server;
    if (!server || res.destroyed) return;
    req.headers.authorization = `Bearer ${token}`;
    startTimer(state, res);
    server.web(req, res, { ...state.route.proxyOptions, buffer: Readable.from([]) });
  }

  // Hands the prepared request to http-proxy. The route's options are complete and static (parsed target,
  // no pathFilter, router or pathRewrite, req.url already the upstream path), so the middleware wrapper
  // would only copy them and await three no-op steps per request; calling the captured http-proxy server
  // directly does the same proxying (http-proxy copies the options per call) without those microtask
  // hops. This is how `retry` already sends. The middleware stays as the fallback should the plugin not
  // have run.
  function forward(
    route: CompiledRoute,
    req: IncomingMessage,
    res: ServerResponse,
    next: (err?: unknown) => void,
  ): void {
    const server = route.server;
    if (!server) {
      route.handler(req, res, next).catch(next);
      return;
    }
    try {
      server.web(req, res, route.proxyOptions);
    } catch (err) {
      next(err);
    }
  }

  function answerTokenError(res: ServerResponse, err: unknown): void {
    const known = asHttpError(err);
    if (known) {
      sendError(
        res,
        known.status,
        known.code,
        known.retryAfter === undefined ? undefined : { 'retry-after': String(known.retryAfter) },
      );
    } else {
      logger.error({ err: err instanceof Error ? err.name : typeof err }, 'remote API token lookup failed');
      sendError(res, 500, ProxyErrorCode.internal);
    }
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
      sendError(res, 400, ProxyErrorCode.badPath);
      return;
    }
    const route = match.route;
    const method = req.method ?? 'GET';
    if (route.methods && !route.methods.has(method)) {
      sendError(res, 405, ProxyErrorCode.method, { allow: [...route.methods].join(', ') });
      return;
    }
    // SECURITY X1: a static custom header a cross-site form or <img> cannot send. 401 like the rest of
    // the BFF (ERR_BFF_CSRF, the Duende contract), not X1's 403.
    if (route.api.csrf && req.headers['x-csrf'] !== '1') {
      sendError(res, 401, ProxyErrorCode.csrf);
      return;
    }
    const hasBody =
      req.headers['transfer-encoding'] !== undefined || hasNonZeroLength(req.headers['content-length']);
    // SECURITY X4: state-changing calls with a type a cross-site form can send need an explicit allowlist;
    // a body without any type (a no-cors Blob) counts as simple too.
    if (!SAFE_METHODS.has(method) && hasBody) {
      const type = mediaType(req.headers['content-type']);
      if (type === '' || (SIMPLE_TYPES.has(type) && !route.simpleAllowed.has(type))) {
        sendError(res, 415, ProxyErrorCode.contentType);
        return;
      }
    }
    tokenFor(route.api, req).then(
      ([token, userToken]) => {
        if (res.destroyed) return;
        const state: RequestState = {
          route,
          userToken,
          retryable: !hasBody && RETRY_METHODS.has(method),
          retried: false,
          timedOut: false,
          cookie: req.headers.cookie,
          timer: undefined,
          proxyReq: undefined,
        };
        (req as ProxiedRequest)[STATE] = state;
        prepareRequestHeaders(req.headers, forwarded, req.socket.remoteAddress, token, false, route.api);
        req.url = match.upstreamPath;
        res.once('close', () => clearTimer(state));
        startTimer(state, res);
        forward(route, req, res, next);
      },
      (err: unknown) => answerTokenError(res, err),
    );
  }

  function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const match = table.match(req.url ?? '');
    if (match.kind === 'none') return false;
    // Upgrade sockets have no error listener of the server's any more; a reset must not crash us.
    socket.on('error', () => socket.destroy());
    if (match.kind === 'invalid') {
      rejectUpgrade(socket, 400, ProxyErrorCode.badPath);
      return true;
    }
    const route = match.route;
    if (!route.api.websocket) {
      rejectUpgrade(socket, 404, ProxyErrorCode.badPath);
      return true;
    }
    // CSRF for WebSockets is an Origin check: browsers always send Origin on a handshake and a page on
    // another origin cannot forge it (cross-site WebSocket hijacking).
    if (req.headers.origin !== publicOrigin) {
      rejectUpgrade(socket, 403, ProxyErrorCode.origin);
      return true;
    }
    tokenFor(route.api, req).then(
      ([token, userToken]) => {
        if (socket.destroyed) return;
        (req as ProxiedRequest)[STATE] = {
          route,
          userToken,
          retryable: false,
          retried: false,
          timedOut: false,
          cookie: undefined,
          timer: undefined,
          proxyReq: undefined,
        };
        prepareRequestHeaders(req.headers, forwarded, req.socket.remoteAddress, token, true, route.api);
        req.url = match.upstreamPath;
        route.handler.upgrade(req, socket as Socket, head);
      },
      (err: unknown) => {
        const known = asHttpError(err);
        rejectUpgrade(socket, known?.status ?? 500, known?.code ?? ProxyErrorCode.internal);
      },
    );
    return true;
  }

  function close(): void {
    for (const agent of agents.values()) agent.destroy();
  }

  return { handle, upgrade, close };
}

function hasNonZeroLength(value: string | undefined): boolean {
  return value !== undefined && value !== '0';
}

/** `Text/Plain; charset=utf-8` → `text/plain`. */
function mediaType(value: string | undefined): string {
  if (value === undefined) return '';
  const semi = value.indexOf(';');
  return (semi === -1 ? value : value.slice(0, semi)).trim().toLowerCase();
}
