// createBff: validates the options once, builds the parts (store, sessions, tokens, OIDC client) and
// wires one Express router: cross-site check → session → /bff endpoints → back-channel logout →
// remote-API proxy → error handler. Everything per-request is precomputed here.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { type NextFunction, type Request, type RequestHandler, type Response, Router } from 'express';
import { createBackchannelRouter } from './backchannel/index.js';
import { createClientTokenSource } from './client-token.js';
import { type BffOptions, type ResolvedBffConfig, resolveConfig } from './config.js';
import type { BffContext, Logger, SessionUser } from './context.js';
import type { Core } from './core.js';
import { createSealer, sha256 } from './crypto.js';
import { crossSiteError, hasCsrfHeader } from './csrf.js';
import { BffError, describeError, isBffError, sendJsonError } from './errors.js';
import { createOidcConfiguration } from './oidc.js';
import { createRemoteApiRouter, createUpgradeHandler, getProxyEngine } from './proxy/index.js';
import { callbackHandler, loginHandler, silentCallbackHandler } from './routes/login.js';
import { logoutHandler, signedOutHandler } from './routes/logout.js';
import { diagnosticsHandler, userHandler } from './routes/user.js';
import { createEntryMatcher, ROUTER_OPTIONS } from './routing.js';
import { type BffSessionData, createSessionManager, type LoadedSession } from './session.js';
import { guardStore } from './store/guard.js';
import { createMemoryStore } from './store/memory.js';
import type { SessionMatch } from './store/types.js';
import { createTokenService } from './tokens.js';

/** What local API handlers get on `req.bff` after {@link Bff.localApi}. */
export interface BffRequestContext {
  /** The signed-in user, or undefined on routes with `requireUser: false`. */
  readonly user: SessionUser | undefined;
  /** The user's access token, refreshed when needed. Throws BffError (401/503). */
  getAccessToken(options?: { forceRefresh?: boolean; resource?: string }): Promise<string>;
}

declare global {
  namespace Express {
    interface Request {
      /** Set by `bff.localApi()`. */
      bff?: BffRequestContext;
    }
  }
}

/** Options of {@link Bff.localApi}. */
export interface LocalApiOptions {
  /** Answer 401 without a session. Default true. */
  requireUser?: boolean;
  /** Require `X-CSRF: 1`. Default true. */
  csrf?: boolean;
}

/** A session as listed by the session admin API (no tokens, no session id). */
export interface SessionSummary {
  /** A stable, non-secret handle of the session (hash of its id). */
  readonly handle: string;
  readonly iss: string;
  readonly sub: string;
  readonly sid: string | undefined;
  /** Epoch seconds. */
  readonly createdAt: number;
  readonly lastSeenAt: number;
  readonly expiresAt: number;
}

/** The object createBff returns. */
export interface Bff {
  /** Mount at the root of the host: `app.use(bff.router)`. */
  readonly router: Router;
  /** Guard for the host's own API routes: X-CSRF, session, `req.bff`. Answers 401 JSON, never a redirect. */
  localApi(options?: LocalApiOptions): RequestHandler;
  /** Error handler for the host's local API routes: BffError → `{ error: code }` with its status. */
  readonly errorHandler: (err: unknown, req: Request, res: Response, next: NextFunction) => void;
  /**
   * The fast path for remote-API calls, ahead of Express: answers a call under a declared remote-API
   * prefix (cross-site check, then the proxy) and returns true; returns false for anything else, which
   * the host then hands to its app. Optional — `router` proxies the same calls — but it skips Express's
   * routing and every host middleware for them (see docs/remote-apis.md, "Fast path"):
   * `createServer((req, res) => bff.handleRequest(req, res) || app(req, res))`.
   */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean;
  /** Handles a WebSocket upgrade for a remote API; false when the path is not one. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  /** Listens for upgrades on `server` (sockets for unknown paths are closed). */
  attach(server: Server): void;
  /** The signed-in user of a request. */
  getUser(req: Request | IncomingMessage): Promise<SessionUser | undefined>;
  /** The user's access token for a request, refreshed when needed. */
  getAccessToken(
    req: Request | IncomingMessage,
    options?: { forceRefresh?: boolean; resource?: string },
  ): Promise<string>;
  /** Session admin API: list and revoke the sessions of a user (`sub`) or an OP session (`sid`). */
  readonly sessions: {
    list(match: SessionMatch): Promise<SessionSummary[]>;
    revoke(match: SessionMatch): Promise<number>;
  };
  /** The resolved, frozen configuration. */
  readonly config: ResolvedBffConfig;
  /** The context handed to the route modules (for extensions). */
  readonly context: BffContext;
  /** Runs discovery now (it otherwise runs on first use); rejects with BffError on failure. */
  ready(): Promise<void>;
  /**
   * Graceful shutdown. From the call on, new requests to the BFF's paths (`/bff/*`, remote APIs,
   * `localApi()` routes, WebSocket upgrades) get 503 `ERR_BFF_SHUTTING_DOWN` with `Retry-After` and
   * `Connection: close`; requests and token refreshes already under way may finish, for at most
   * `timeout` seconds; then the proxy's keep-alive agents and the store the BFF created itself (the
   * default memory store) are closed. A store you passed in (and its Redis client) stays open: close it
   * after this resolves. Call it before closing the HTTP server's remaining connections; repeated calls
   * return the same promise.
   */
  close(options?: BffCloseOptions): Promise<void>;
}

/** Options of {@link Bff.close}. */
export interface BffCloseOptions {
  /** Seconds to let in-flight requests and refreshes finish. Default 10. */
  timeout?: number;
}

/** Default of {@link BffCloseOptions.timeout} (seconds). */
const CLOSE_TIMEOUT = 10;

const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

function toBffError(err: unknown): BffError {
  if (isBffError(err)) return err;
  return new BffError('ERR_BFF_INTERNAL', 'internal error', { cause: err });
}

/**
 * Creates a backend-for-frontend: OIDC code flow login, server-side sessions, `/bff/user`, logout,
 * transparent token refresh and the remote-API proxy, as one Express router.
 *
 * @example
 * ```ts
 * const bff = createBff({ issuer, clientId: 'bff', clientSecret, baseUrl: 'https://app.example',
 *   sessionSecret: process.env.SESSION_SECRET!, apiScopes: ['api'] });
 * app.use(bff.router);
 * app.get('/local/whoami', bff.localApi(), (req, res) => res.json(req.bff?.user?.claims));
 * ```
 * @see https://datatracker.ietf.org/doc/draft-ietf-oauth-browser-based-apps/ (§6.1, BFF)
 */
export function createBff(options: BffOptions): Bff {
  const config = resolveConfig(options);
  const logger = options.logger ?? silentLogger;
  const clock = options.clock ?? Date.now;
  const ownsStore = options.store === undefined;
  const store = guardStore(options.store ?? createMemoryStore({ clock }));
  if (store.kind === 'memory' && process.env.NODE_ENV === 'production') {
    logger.warn(
      {},
      'bff: in-memory session store in production: sessions are lost on restart and not shared',
    );
  }

  const getOidcConfiguration = createOidcConfiguration(config, options.fetch, logger, clock);
  const sessions = createSessionManager(config, store, logger, clock);

  const endSession = async (sessionId: string) => {
    await store.destroy(sessionId);
    tokens.forget(sessionId);
  };
  const tokens = createTokenService({
    config,
    store,
    sessions,
    logger,
    clock,
    getOidcConfiguration,
    endSession,
  });

  const core: Core = {
    config,
    store,
    sessions,
    tokens,
    logger,
    clock,
    cookieSealer: createSealer(config.sessionSecrets, 'cookie'),
    getOidcConfiguration,
    endSession,
  };

  const toUser = (loaded: LoadedSession): SessionUser => ({
    sessionId: loaded.id,
    iss: loaded.data.iss,
    sub: loaded.data.sub,
    ...(loaded.data.sid !== undefined ? { sid: loaded.data.sid } : {}),
    claims: loaded.data.claims,
  });

  const getUser = async (req: Request | IncomingMessage) => {
    const loaded = await sessions.current(req);
    return loaded ? toUser(loaded) : undefined;
  };

  const endSessions = async (match: SessionMatch): Promise<number> => {
    const ids = await store.find(match);
    for (const id of ids) await endSession(id);
    if (ids.length > 0) logger.info({ count: ids.length }, 'bff: sessions ended');
    return ids.length;
  };

  const clientTokens =
    options.getClientAccessToken ?? createClientTokenSource(config, options.fetch, clock, logger);

  // Rate buckets are keyed by a hash of the session id, so the id itself never becomes another store
  // key; hashed once per session, not per call.
  const rateKeys = new Map<string, string>();
  const rateKeyOf = (id: string): string => {
    let key = rateKeys.get(id);
    if (key === undefined) {
      if (rateKeys.size >= 10_000) rateKeys.clear();
      key = sha256(id).slice(0, 32);
      rateKeys.set(id, key);
    }
    return key;
  };

  const context: BffContext = {
    config,
    logger,
    getOidcConfiguration,
    getUser,
    getUserAccessToken: (req, opts) => tokens.getUserAccessToken(req, opts),
    getClientAccessToken: (opts) => clientTokens(opts ?? {}),
    endSessions,
    claimOnce: (key, ttlSeconds) => store.claimOnce(`once:${key}`, ttlSeconds),
    consumeRate: async (req, bucket, capacity, refillPerSecond) => {
      // The signed cookie names the session (HMAC checked, cached): no store read just to count a call.
      const id = sessions.sessionIdFromCookie(req.headers.cookie);
      if (id === undefined || store.consumeRate === undefined) return undefined;
      return store.consumeRate(`rate:${rateKeyOf(id)}:${bucket}`, capacity, refillPerSecond);
    },
  };

  // Only our paths look at sessions; the host's static files and other routes pay nothing. The /bff
  // endpoints run express-session (they create, regenerate and destroy sessions); remote-API calls
  // only read the session, which the session manager does directly (see SessionManager.current).
  // SECURITY X5: one matcher (routing.ts) decides for the entry checks and, with exact case-sensitive
  // routers, for the routing too; look-alikes of an endpoint or a prefix get 404 right here.
  const entry = createEntryMatcher(config.remoteApis);

  // The same engine the remote-API router below uses (one per context, so one agent per upstream).
  const proxyEngine = getProxyEngine(context);

  // Graceful shutdown (close()): refuse new work on our paths, count the requests still under way.
  let closing = false;
  let inFlight = 0;
  let idle: (() => void) | undefined;
  const refuseWhileClosing = (res: ServerResponse) => {
    res.setHeader('Connection', 'close');
    sendJsonError(res, new BffError('ERR_BFF_SHUTTING_DOWN', 'shutting down', { retryAfter: 1 }));
  };
  const track = (res: ServerResponse) => {
    inFlight++;
    res.once('close', () => {
      inFlight--;
      if (inFlight === 0) idle?.();
    });
  };

  const router = Router(ROUTER_OPTIONS);
  router.use((req, res, next) => {
    const kind = entry(req.path);
    if (kind === 'other') return next();
    if (closing) return refuseWhileClosing(res);
    if (kind === 'not-found') return sendJsonError(res, new BffError('ERR_BFF_NOT_FOUND', 'not found'));
    track(res);
    if (kind !== 'backchannel') {
      const crossSite = crossSiteError(req, config.origin);
      if (crossSite) return sendJsonError(res, crossSite);
    }
    if (kind !== 'api') sessions.middleware(req, res, next);
    // A remote-API call goes straight to the proxy engine: the layers between here and the remote-API
    // router (the /bff endpoints and the back-channel route) cannot match a path outside `/bff` (remote-API
    // prefixes may not lie inside it), so walking them only costs router work on every proxied call. The
    // engine does all its own checks (raw-target match, path safety, method, X-CSRF, content type) exactly
    // as when reached through the router, and a path it does not take still falls through via `next`.
    else proxyEngine.handle(req, res, next);
  });

  // The same remote-API branch without Express: for hosts that hand requests to the BFF before their
  // app (bff.handleRequest), so a proxied call costs no Express routing, no host middleware. Same
  // matchers, same cross-site check, same engine as the entry handler above.
  const handleRequest = (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    if (entry(path) !== 'api') return false;
    if (closing) {
      refuseWhileClosing(res);
      return true;
    }
    track(res);
    const crossSite = crossSiteError(req, config.origin);
    if (crossSite) {
      sendJsonError(res, crossSite);
      return true;
    }
    let taken = true;
    proxyEngine.handle(req, res, () => {
      taken = false; // not one of the engine's routes after all (it decides on the raw target)
    });
    return taken;
  };
  // The endpoints sit in one sub-router so proxied API calls pass them with a single prefix check.
  const endpoints = Router(ROUTER_OPTIONS);
  endpoints.get('/login', loginHandler(core, false));
  endpoints.get('/silent-login', loginHandler(core, true));
  endpoints.get('/callback', callbackHandler(core));
  endpoints.get('/silent-login-callback', silentCallbackHandler(core));
  endpoints.get('/user', userHandler(core));
  endpoints.get('/logout', logoutHandler(core));
  endpoints.post('/logout', logoutHandler(core));
  endpoints.get('/signed-out', signedOutHandler(core));
  endpoints.get('/diagnostics', diagnosticsHandler(core));
  router.use('/bff', endpoints);
  router.use(createBackchannelRouter(context));
  router.use(createRemoteApiRouter(context));
  router.use('/bff', (_req, res) => sendJsonError(res, new BffError('ERR_BFF_NOT_FOUND', 'not found')));

  const errorHandler = (err: unknown, _req: Request, res: Response, next: NextFunction) => {
    const bffError = toBffError(err);
    if (bffError.status >= 500)
      logger.error({ err: describeError(err), code: bffError.code }, 'bff: request failed');
    if (res.headersSent) return next(err);
    sendJsonError(res, bffError);
  };
  router.use(errorHandler);

  const proxyUpgrade = createUpgradeHandler(context);
  let closed: Promise<void> | undefined;
  const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): boolean => {
    if (closing && entry((req.url ?? '').split('?')[0] ?? '') === 'api') {
      socket.end(
        'HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n',
      );
      return true;
    }
    return proxyUpgrade(req, socket, head);
  };

  const localApi = (opts: LocalApiOptions = {}): RequestHandler => {
    const requireUser = opts.requireUser ?? true;
    const csrf = opts.csrf ?? true;
    return (req, res, next) => {
      if (closing) return refuseWhileClosing(res);
      track(res);
      const crossSite = crossSiteError(req, config.origin);
      if (crossSite) return sendJsonError(res, crossSite);
      if (csrf && !hasCsrfHeader(req))
        return sendJsonError(res, new BffError('ERR_BFF_CSRF', 'X-CSRF header required'));
      const proceed = () => {
        sessions.current(req).then(
          (loaded) => {
            if (!loaded && requireUser)
              return sendJsonError(res, new BffError('ERR_BFF_NO_SESSION', 'no session'));
            req.bff = {
              user: loaded ? toUser(loaded) : undefined,
              getAccessToken: (o) => tokens.getUserAccessToken(req, o),
            };
            next();
          },
          (err: unknown) => sendJsonError(res, toBffError(err)),
        );
      };
      // Like remote-API calls, guarded local routes only read the session (no express-session run).
      proceed();
    };
  };

  return Object.freeze({
    router,
    localApi,
    errorHandler,
    handleRequest,
    handleUpgrade: upgrade,
    attach(server: Server) {
      server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        if (!upgrade(req, socket, head) && server.listenerCount('upgrade') === 1) socket.destroy();
      });
    },
    getUser,
    getAccessToken: (req: Request | IncomingMessage, opts?: { forceRefresh?: boolean; resource?: string }) =>
      tokens.getUserAccessToken(req, opts),
    sessions: {
      async list(match: SessionMatch): Promise<SessionSummary[]> {
        const ids = await store.find(match);
        const out: SessionSummary[] = [];
        for (const id of ids) {
          const stored = await store.get(id);
          if (!stored) continue;
          const data = (JSON.parse(stored.data) as { bff?: BffSessionData }).bff;
          if (!data) continue;
          out.push({
            handle: sha256(id).slice(0, 16),
            iss: data.iss,
            sub: data.sub,
            sid: data.sid,
            createdAt: data.createdAt,
            lastSeenAt: data.lastSeenAt,
            expiresAt: data.expiresAt,
          });
        }
        return out;
      },
      revoke: endSessions,
    },
    config,
    context,
    async ready() {
      await getOidcConfiguration();
    },
    close(closeOptions: BffCloseOptions = {}): Promise<void> {
      const timeout = closeOptions.timeout ?? CLOSE_TIMEOUT;
      if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout < 0 || timeout > 3600) {
        return Promise.reject(
          new TypeError(
            `bff.close: \`timeout\` must be a number of seconds between 0 and 3600 (got ${String(timeout)})`,
          ),
        );
      }
      closed ??= (async () => {
        closing = true;
        const drained = Promise.all([
          inFlight === 0
            ? Promise.resolve()
            : new Promise<void>((resolve) => {
                idle = resolve;
              }),
          tokens.drain(timeout),
        ]);
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeout * 1000);
        });
        await Promise.race([drained, deadline]);
        clearTimeout(timer);
        if (inFlight > 0) logger.warn({ inFlight }, 'bff: closing with requests still under way');
        proxyEngine.close();
        if (ownsStore) await store.close?.();
      })();
      return closed;
    },
  });
}
