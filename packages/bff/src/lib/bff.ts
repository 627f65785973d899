// createBff: validates the options once, builds the parts (store, session step, token step, OIDC
// client, proxy engine) and wires one Express router: entry checks (entry.ts) → /bff endpoints →
// back-channel logout → remote-API proxy → error handler. Everything per-request is precomputed here;
// each request step is a function of its own module that takes and returns plain values.
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { type NextFunction, type Request, type Response, Router } from 'express';
import { LRUCache } from 'lru-cache';
import type { Bff, BffCloseOptions, SessionSummary } from './bff-api.js';
import type { BffOptions } from './bff-options.js';
import { createClientTokenSource } from './client-token.js';
import { resolveConfig } from './config.js';
import { createSealer, sha256 } from './crypto.js';
import { createAuthorizationServerDpop } from './dpop/authorization-server.js';
import { createEntryHandler, createFastPath } from './entry.js';
import { BffError, describeError, toBffError } from './errors.js';
import type { BffExtensionContext } from './extension-context.js';
import { appendSetCookie } from './http/cookies.js';
import { rejectUpgrade, sendError } from './http/problem.js';
import { createLocalApi } from './local-api.js';
import { silentLogger } from './logger.js';
import { createOidcConfiguration } from './oidc.js';
import { createProxyEngine, createRemoteApiRouter, createUpgradeHandler } from './proxy/index.js';
import { type RetainedPart, registerRetention } from './retention.js';
import { createBackchannelRouter } from './routes/backchannel.js';
import { callbackHandler, silentCallbackHandler } from './routes/callback.js';
import { loginHandler } from './routes/login.js';
import { logoutHandler, signedOutHandler } from './routes/logout.js';
import { diagnosticsHandler, userHandler } from './routes/user.js';
import { createEntryMatcher, ROUTER_OPTIONS } from './routing.js';
import type { BffServices } from './services.js';
import { type LoadedSession, toSessionUser } from './session/data.js';
import { createSessions } from './session/sessions.js';
import { createShutdownGate, SHUTTING_DOWN } from './shutdown.js';
import { guardStore } from './store/guard.js';
import { EXTENSION_MARK } from './store/marks.js';
import { createMemoryStore } from './store/memory.js';
import type { RateDecision, SessionMatch } from './store/types.js';
import { createTokenService } from './tokens.js';

export type {
  Bff,
  BffCloseOptions,
  BffRequestContext,
  LocalApiOptions,
  SessionSummary,
} from './bff-api.js';

/** Default of {@link BffCloseOptions.timeout} (seconds). */
const CLOSE_TIMEOUT = 10;
const NOT_FOUND = new BffError('ERR_BFF_NOT_FOUND', 'not found');
const NO_SESSION = new BffError('ERR_BFF_NO_SESSION', 'no session');
/** No bucket to take (no session cookie): one settled promise, shared. */
const NO_DECISION: Promise<undefined> = Promise.resolve(undefined);

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

  // D1: every DPoP-Nonce the OP sends is remembered, for the proofs of all sessions.
  const dpop = createAuthorizationServerDpop();
  const oidcFetch = config.dpop
    ? dpop.recordingFetch(options.fetch ?? ((input, init) => globalThis.fetch(input, init)))
    : options.fetch;
  const getOidcConfiguration = createOidcConfiguration(config, oidcFetch, logger, clock);
  // A session that ends (logout, back-channel logout, expiry, the per-user cap, a failed refresh) or is
  // found gone takes along what this process keeps for it: its decrypted tokens and refresh back-off,
  // and its rate-bucket keys (the session step drops its verified cookie itself).
  const sessions = createSessions(config, store, logger, clock, (sessionId) => {
    tokens.forget(sessionId);
    rateKeys.delete(sessionId);
  });
  const endSession = (sessionId: string) => sessions.end(sessionId);
  const tokens = createTokenService({
    config,
    store,
    logger,
    clock,
    getOidcConfiguration,
    endSession,
    dpop,
  });
  const clientTokens =
    options.getClientAccessToken ?? createClientTokenSource(config, options.fetch, clock, logger);

  const services: BffServices = {
    config,
    store,
    sessions,
    tokens,
    logger,
    clock,
    cookieSealer: createSealer(config.sessionSecrets, 'cookie'),
    getOidcConfiguration,
    dpop,
    sessionOf: (req, res, slide = true) =>
      sessions.load(req.headers.cookie, {
        slide,
        onExpired: () => appendSetCookie(res, sessions.cookie.clear),
      }),
    endSession,
  };

  const endSessions = async (match: SessionMatch): Promise<number> => {
    const ids = await store.find(match);
    for (const id of ids) await endSession(id);
    if (ids.length > 0) logger.info({ count: ids.length }, 'bff: sessions ended');
    return ids.length;
  };

  // Rate buckets are keyed by a hash of the session id, so the id itself never becomes another store
  // key; each session's key per bucket is built once, not per call. The signed cookie names the session
  // (HMAC checked, cached): no store read just to count a call. Dropped when the session ends here.
  const rateKeys = new LRUCache<string, Map<string, string>>({ max: 10_000 });
  const rateKeyOf = (id: string, bucket: string): string => {
    let keys = rateKeys.get(id);
    if (keys === undefined) {
      keys = new Map();
      rateKeys.set(id, keys);
    }
    let key = keys.get(bucket);
    if (key === undefined) {
      key = `rate:${sha256(id).slice(0, 32)}:${bucket}`;
      keys.set(bucket, key);
    }
    return key;
  };
  // Not async: the store's own promise is returned as it is (an async wrapper would add a promise and
  // two microtask turns to every proxied call).
  const consumeRate = (
    cookieHeader: string | undefined,
    bucket: string,
    capacity: number,
    refillPerSecond: number,
  ): Promise<RateDecision | undefined> => {
    const id = sessions.cookie.idFrom(cookieHeader);
    if (id === undefined || store.consumeRate === undefined) return NO_DECISION;
    return store.consumeRate(rateKeyOf(id, bucket), capacity, refillPerSecond);
  };

  // The public, request-level helpers: the same session and token steps, fed from the request's cookie.
  const getUser = async (req: IncomingMessage) => {
    const session = await sessions.load(req.headers.cookie);
    return session ? toSessionUser(session) : undefined;
  };
  const getAccessToken = async (
    req: IncomingMessage,
    opts?: { forceRefresh?: boolean; resource?: string },
  ) => {
    const session = await sessions.load(req.headers.cookie);
    if (!session) throw NO_SESSION;
    return tokens.getAccessToken(session, opts);
  };
  const context: BffExtensionContext = {
    config,
    logger,
    getOidcConfiguration,
    getUser,
    getUserAccessToken: getAccessToken,
    getClientAccessToken: (opts) => clientTokens(opts ?? {}),
    endSessions,
    claimOnce: (key, ttlSeconds) => store.claimOnce(`${EXTENSION_MARK}${key}`, ttlSeconds),
    consumeRate: (req, bucket, capacity, refillPerSecond) =>
      consumeRate(req.headers.cookie, bucket, capacity, refillPerSecond),
  };

  // One engine (so one keep-alive pool per upstream) for the router, the fast path and upgrades.
  const proxyEngine = createProxyEngine<LoadedSession>({
    routes: config.remoteApis,
    publicOrigin: config.origin,
    logger,
    tokens: {
      loadSession: (cookieHeader) => sessions.load(cookieHeader),
      getUserToken: (session, opts) => tokens.getAccessToken(session, opts),
      getClientToken: (opts) => clientTokens(opts),
      senderKey: (session) => tokens.senderKey(session),
    },
    rateLimiter: consumeRate,
  });

  // Only our paths look at sessions; the host's static files and other routes pay nothing.
  // SECURITY X5: one matcher (routing.ts) decides for the entry checks and, with exact case-sensitive
  // routers, for the routing too; look-alikes of an endpoint or a prefix get 404 right at the entry.
  const gate = createShutdownGate();
  const entryDeps = {
    origin: config.origin,
    entry: createEntryMatcher(config.remoteApis),
    gate,
    engine: proxyEngine,
  };

  const router = Router(ROUTER_OPTIONS);
  router.use(createEntryHandler(entryDeps));
  // The endpoints sit in one sub-router so proxied API calls pass them with a single prefix check.
  const endpoints = Router(ROUTER_OPTIONS);
  endpoints.get('/login', loginHandler(services, false));
  endpoints.get('/silent-login', loginHandler(services, true));
  endpoints.get('/callback', callbackHandler(services));
  endpoints.get('/silent-login-callback', silentCallbackHandler(services));
  endpoints.get('/user', userHandler(services));
  endpoints.get('/logout', logoutHandler(services));
  endpoints.post('/logout', logoutHandler(services));
  endpoints.get('/signed-out', signedOutHandler(services));
  endpoints.get('/diagnostics', diagnosticsHandler(services));
  router.use('/bff', endpoints);
  router.use(createBackchannelRouter(context));
  router.use(createRemoteApiRouter(proxyEngine, config.remoteApis.length > 0));
  router.use('/bff', (_req, res) => sendError(res, NOT_FOUND));

  const errorHandler = (err: unknown, _req: Request, res: Response, next: NextFunction) => {
    const bffError = toBffError(err);
    if (bffError.status >= 500)
      logger.error({ err: describeError(err), code: bffError.code }, 'bff: request failed');
    if (res.headersSent) return next(err);
    sendError(res, bffError);
  };
  router.use(errorHandler);

  const proxyUpgrade = createUpgradeHandler(proxyEngine);
  const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): boolean => {
    if (gate.closing && entryDeps.entry((req.url ?? '').split('?')[0] ?? '') === 'api') {
      rejectUpgrade(socket, SHUTTING_DOWN);
      return true;
    }
    return proxyUpgrade(req, socket, head);
  };

  let closed: Promise<void> | undefined;
  const bff = Object.freeze({
    router,
    localApi: createLocalApi({ origin: config.origin, sessions, tokens, gate }),
    errorHandler,
    handleRequest: createFastPath(entryDeps),
    handleUpgrade: upgrade,
    attach(server: Server) {
      server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        if (!upgrade(req, socket, head) && server.listenerCount('upgrade') === 1) socket.destroy();
      });
    },
    getUser,
    getAccessToken,
    sessions: {
      async list(match: SessionMatch): Promise<SessionSummary[]> {
        return (await sessions.list(match)).map(({ id, data }) => ({
          handle: sha256(id).slice(0, 16),
          iss: data.iss,
          sub: data.sub,
          sid: data.sid,
          createdAt: data.createdAt,
          lastSeenAt: data.lastSeenAt,
          expiresAt: data.expiresAt,
        }));
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
        gate.close();
        const drained = Promise.all([gate.idle(), tokens.drain(timeout)]);
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeout * 1000);
        });
        await Promise.race([drained, deadline]);
        clearTimeout(timer);
        if (gate.inFlight > 0)
          logger.warn({ inFlight: gate.inFlight }, 'bff: closing with requests still under way');
        proxyEngine.close();
        if (ownsStore) await store.close?.();
      })();
      return closed;
    },
  });
  registerRetention(bff, (sessionId) => {
    const parts: RetainedPart[] = [];
    if (tokens.retains(sessionId)) parts.push('tokens');
    if (rateKeys.has(sessionId)) parts.push('rate keys');
    if (sessions.cookie.retains(sessionId)) parts.push('verified cookie');
    return parts;
  });
  return bff;
}
