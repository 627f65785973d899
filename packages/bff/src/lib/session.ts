// Server-side sessions on express-session. The session object holds who the user is and timestamps;
// the encrypted token record sits beside it in the store (`StoredSession.tokens`) and is written only
// by the token code, so express-session saving a stale copy of a session can never roll back a
// rotated refresh token.
import { createHmac } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import session from 'express-session';
import type { ResolvedBffConfig } from './config.js';
import type { Logger } from './context.js';
import { appendSetCookie } from './core.js';
import { randomId, safeEqual } from './crypto.js';
import { BffError, describeError, sendJsonError } from './errors.js';
import type { SessionIndex, SessionStore, StoredSession } from './store/types.js';

/** What the BFF keeps in a session (plain JSON; tokens live in the separate encrypted record). */
export interface BffSessionData {
  readonly v: 1;
  readonly iss: string;
  readonly sub: string;
  readonly sid?: string;
  /** Value of the `sid` parameter of `bff:logout_url`: the OP's `sid`, else a random value. */
  readonly logoutId: string;
  readonly claims: Record<string, unknown>;
  readonly sessionState?: string;
  /** Epoch seconds. */
  readonly createdAt: number;
  /** Epoch milliseconds of creation: orders one user's sessions for the per-user cap (S6). */
  readonly createdAtMs?: number;
  lastSeenAt: number;
  /** Absolute expiry, epoch seconds. */
  readonly expiresAt: number;
}

declare module 'express-session' {
  interface SessionData {
    bff?: BffSessionData;
  }
}

/** A loaded, live session. */
export interface LoadedSession {
  readonly id: string;
  readonly data: BffSessionData;
  /** Encrypted token record as read with the session (may be stale after a refresh elsewhere). */
  tokens: string | undefined;
}

const snapshots = new WeakMap<object, LoadedSession>();
/** Requests whose session was read directly (no express-session on them). */
const rawReads = new WeakSet<object>();
const pendingTokens = new WeakMap<object, string>();
const storedTokens = new WeakMap<object, string | undefined>();

/** Loopback socket addresses (the sample suite serves plain http on localhost). */
function isLoopbackAddress(address: string | undefined): boolean {
  return (
    address === '127.0.0.1' ||
    address === '::1' ||
    address === '::ffff:127.0.0.1' ||
    !!address?.startsWith('127.')
  );
}

/** Bridges the promise-based SessionStore to express-session's callback Store. */
class ExpressStoreAdapter extends session.Store {
  constructor(
    private readonly store: SessionStore,
    private readonly ttlFor: (data: BffSessionData | undefined) => number,
  ) {
    super();
  }

  override get(sid: string, callback: (err: unknown, session?: session.SessionData | null) => void): void {
    this.store.get(sid).then((stored: StoredSession | undefined) => {
      if (!stored) return callback(null, null);
      let parsed: session.SessionData;
      try {
        parsed = JSON.parse(stored.data) as session.SessionData;
      } catch {
        return callback(null, null);
      }
      storedTokens.set(parsed, stored.tokens);
      callback(null, parsed);
    }, callback);
  }

  override set(sid: string, sess: session.SessionData, callback?: (err?: unknown) => void): void {
    const bff = sess.bff;
    const index: SessionIndex | undefined = bff ? { iss: bff.iss, sub: bff.sub, sid: bff.sid } : undefined;
    // Sessions are created only at the callback (with their tokens); every other save is an update
    // and must not bring back a session that was ended while this request ran.
    const tokens = pendingTokens.get(sess);
    this.store
      .set(sid, { data: JSON.stringify(sess), index, tokens, update: tokens === undefined }, this.ttlFor(bff))
      .then(() => {
        pendingTokens.delete(sess);
        callback?.();
      }, callback);
  }

  override destroy(sid: string, callback?: (err?: unknown) => void): void {
    this.store.destroy(sid).then(() => callback?.(), callback);
  }

  // No touch(): reads never write. The last-seen time (and with it the TTL) is saved by `set` at most
  // every touchInterval, and without touch() express-session skips a store round trip per request.

  override createSession(req: Request, sess: session.SessionData): session.Session & session.SessionData {
    const created = super.createSession(req, sess);
    const data = sess.bff;
    if (data && typeof req.sessionID === 'string') {
      snapshots.set(req, { id: req.sessionID, data, tokens: storedTokens.get(sess) });
    }
    return created;
  }
}

/** Session handling shared by the routes, the guard and the proxy. */
export interface SessionManager {
  /** express-session plus server-side timeout enforcement; store errors become 503 JSON. */
  readonly middleware: RequestHandler;
  /** The live session of an Express request (after `middleware`) or a raw upgrade request. */
  current(req: Request | IncomingMessage): Promise<LoadedSession | undefined>;
  /**
   * Replaces the request's session by a new one (new id, L13) holding `data` and `tokens`, then ends
   * the same user's oldest sessions beyond `maxSessionsPerUser` (S6), calling `onEnded` for each.
   */
  create(
    req: Request,
    data: BffSessionData,
    sealTokens: (sessionId: string) => string,
    onEnded?: (sessionId: string) => void,
  ): Promise<string>;
  /** Deletes the request's session from the store and expires the cookie (O2). */
  destroy(req: Request, res: Response): Promise<void>;
  /** Extends the idle timeout of the request's session (written at most every touchInterval). */
  slide(req: Request): void;
  /** Seconds until the session expires (idle or absolute, whichever comes first). */
  expiresIn(data: BffSessionData): number;
  /** Updates the per-request token snapshot after a refresh. */
  updateSnapshot(req: Request | IncomingMessage, tokens: string): void;
  /** Parses the session id out of a Cookie header, verifying the signature; undefined if absent/forged. */
  sessionIdFromCookie(cookieHeader: string | undefined): string | undefined;
  /** The Set-Cookie value that expires the session cookie. */
  readonly clearCookie: string;
  nowSeconds(): number;
}

/** Builds the session manager for one createBff instance. */
export function createSessionManager(
  config: ResolvedBffConfig,
  store: SessionStore,
  logger: Logger,
  clock: () => number,
): SessionManager {
  const nowSeconds = () => Math.floor(clock() / 1000);
  const expiresIn = (data: BffSessionData) =>
    Math.max(0, Math.min(data.expiresAt, data.lastSeenAt + config.idleTimeout) - nowSeconds());
  const isLive = (data: BffSessionData) => expiresIn(data) > 0;
  // Store TTL: until the session could expire at the earliest possible moment, plus slack for clock skew.
  const ttlFor = (data: BffSessionData | undefined) => (data ? expiresIn(data) + 5 : config.idleTimeout);

  const adapter = new ExpressStoreAdapter(store, ttlFor);
  const expressSession = session({
    name: config.cookieName,
    secret: [...config.sessionSecrets],
    store: adapter,
    resave: false,
    saveUninitialized: false,
    rolling: false,
    unset: 'keep',
    genid: () => randomId(32),
    // No maxAge: a browser-session cookie; lifetime is enforced server-side (S4).
    cookie: { path: '/', httpOnly: true, secure: true, sameSite: 'strict' },
  });

  const clearCookie = `${config.cookieName}=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=Strict`;

  const destroyExpressSession = (req: Request) =>
    new Promise<void>((resolve, reject) => {
      if (!req.session) return resolve();
      req.session.destroy((err: unknown) => (err ? reject(err) : resolve()));
    });

  const middleware: RequestHandler = (req: Request, res: Response, next: NextFunction) => {
    if (req.session) return next();
    let continued = false;
    expressSession(req, res, (err?: unknown) => {
      if (err) {
        logger.error({ err: describeError(err) }, 'bff: session store failed');
        if (!continued)
          sendJsonError(res, new BffError('ERR_BFF_STORE_UNAVAILABLE', 'session store unavailable'));
        return;
      }
      if (continued) return;
      continued = true;
      const snap = snapshots.get(req);
      if (!snap) return next();
      if (isLive(snap.data)) {
        // The idle timer slides here except on /bff/user, which honours `slide=false` itself.
        if (req.path !== '/bff/user') slide(req);
        return next();
      }
      // Expired (idle or absolute): delete it now; the request goes on anonymous (S4).
      snapshots.delete(req);
      destroyExpressSession(req).then(
        () => {
          appendSetCookie(res, clearCookie);
          next();
        },
        (destroyErr: unknown) => {
          logger.error({ err: describeError(destroyErr) }, 'bff: session store failed');
          sendJsonError(res, new BffError('ERR_BFF_STORE_UNAVAILABLE', 'session store unavailable'));
        },
      );
    });
  };

  function slide(req: Request): void {
    const data = req.session?.bff;
    if (!data) return;
    const now = nowSeconds();
    if (now - data.lastSeenAt >= config.touchInterval) data.lastSeenAt = now;
  }

  // Verified cookie values → session ids, so a busy session costs one HMAC per minute, not per request.
  const verified = new Map<string, { id: string; at: number }>();
  const VERIFIED_MAX = 10_000;

  function sessionIdFromCookie(header: string | undefined): string | undefined {
    if (!header) return undefined;
    const name = `${config.cookieName}=`;
    for (const part of header.split(';')) {
      const trimmed = part.trim();
      if (!trimmed.startsWith(name)) continue;
      let value: string;
      try {
        value = decodeURIComponent(trimmed.slice(name.length));
      } catch {
        return undefined;
      }
      if (!value.startsWith('s:')) return undefined;
      const hit = verified.get(value);
      if (hit && clock() - hit.at < 60_000) return hit.id;
      const signed = value.slice(2);
      const dot = signed.lastIndexOf('.');
      if (dot <= 0) return undefined;
      const id = signed.slice(0, dot);
      for (const secret of config.sessionSecrets) {
        const mac = createHmac('sha256', secret).update(id).digest('base64').replace(/=+$/, '');
        if (safeEqual(signed, `${id}.${mac}`)) {
          if (verified.size >= VERIFIED_MAX) verified.clear();
          verified.set(value, { id, at: clock() });
          return id;
        }
      }
      return undefined;
    }
    return undefined;
  }

  async function current(req: Request | IncomingMessage): Promise<LoadedSession | undefined> {
    const snap = snapshots.get(req);
    if (snap) return rawReads.has(req) || (req as Request).session?.bff ? snap : undefined;
    if ((req as Request).session) return undefined; // went through the middleware: anonymous
    // Remote-API calls and WebSocket upgrades skip express-session (it costs a third of a proxied
    // request): read the same signed cookie and the same store record directly. Read-only, except the
    // idle timer, which slides here too (at most every touchInterval, never resurrecting a session).
    const id = sessionIdFromCookie(req.headers.cookie);
    if (!id) return undefined;
    const stored = await store.get(id);
    if (!stored) return undefined;
    let parsed: session.SessionData;
    try {
      parsed = JSON.parse(stored.data) as session.SessionData;
    } catch {
      return undefined;
    }
    const data = parsed.bff;
    if (!data || !isLive(data)) return undefined;
    const now = nowSeconds();
    if (now - data.lastSeenAt >= config.touchInterval) {
      data.lastSeenAt = now;
      const index: SessionIndex = { iss: data.iss, sub: data.sub, sid: data.sid };
      store
        .set(id, { data: JSON.stringify(parsed), index, update: true }, ttlFor(data))
        .catch((err: unknown) => logger.warn({ err: describeError(err) }, 'bff: session touch failed'));
    }
    const loaded: LoadedSession = { id, data, tokens: stored.tokens };
    snapshots.set(req, loaded);
    rawReads.add(req);
    return loaded;
  }

  /**
   * S6: a user holds at most maxSessionsPerUser sessions; beyond it that user's oldest (by creation)
   * end. Only the user's own index is read, so one user signing in again and again never pushes out
   * anyone else's session (the store's global bound is then never reached by a single user).
   */
  async function capSessionsOf(data: BffSessionData, newId: string): Promise<string[]> {
    const ids = await store.find({ iss: data.iss, sub: data.sub });
    if (ids.length <= config.maxSessionsPerUser) return [];
    const others = await Promise.all(
      ids
        .filter((id) => id !== newId)
        .map(async (id) => {
          const stored = await store.get(id);
          let createdAt = Number.NEGATIVE_INFINITY; // unreadable: first to go
          if (stored) {
            try {
              const parsed = (JSON.parse(stored.data) as session.SessionData).bff;
              if (typeof parsed?.createdAtMs === 'number') createdAt = parsed.createdAtMs;
              else if (typeof parsed?.createdAt === 'number') createdAt = parsed.createdAt * 1000;
            } catch {}
          }
          return { id, createdAt, live: stored !== undefined };
        }),
    );
    const live = others.filter((o) => o.live);
    const excess = live.length + 1 - config.maxSessionsPerUser;
    if (excess <= 0) return [];
    live.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const ended = live.slice(0, excess).map((o) => o.id);
    for (const id of ended) await store.destroy(id);
    return ended;
  }

  async function create(
    req: Request,
    data: BffSessionData,
    sealTokens: (id: string) => string,
    onEnded?: (sessionId: string) => void,
  ): Promise<string> {
    snapshots.delete(req);
    await new Promise<void>((resolve, reject) =>
      req.session.regenerate((err: unknown) => (err ? reject(err) : resolve())),
    );
    req.session.bff = data;
    // express-session sets a Secure cookie only when it believes the request came over TLS. Browsers
    // treat http://localhost as a secure context and keep Secure/__Host- cookies there, so for a
    // loopback base URL reached over a loopback socket we say so — only here, where the cookie is set.
    // Config and socket decide, never a header.
    if (config.loopbackHttp && isLoopbackAddress(req.socket.remoteAddress)) {
      Object.defineProperty(req, 'secure', { value: true, configurable: true });
    }
    // Tokens are sealed with the new id as associated data, then written with the session in one go.
    const tokens = sealTokens(req.sessionID);
    pendingTokens.set(req.session, tokens);
    await new Promise<void>((resolve, reject) =>
      req.session.save((err: unknown) => (err ? reject(err) : resolve())),
    );
    snapshots.set(req, { id: req.sessionID, data, tokens });
    const id = req.sessionID;
    try {
      const ended = await capSessionsOf(data, id);
      for (const endedId of ended) onEnded?.(endedId);
      if (ended.length > 0)
        logger.info({ count: ended.length }, 'bff: oldest sessions of the user ended (cap)');
    } catch (err) {
      // The new session is written; failing the sign-in now would only lose it. The cap is applied
      // again at the user's next sign-in.
      logger.warn({ err: describeError(err) }, 'bff: per-user session cap not applied');
    }
    return id;
  }

  async function destroy(req: Request, res: Response): Promise<void> {
    snapshots.delete(req);
    await destroyExpressSession(req);
    appendSetCookie(res, clearCookie);
  }

  return {
    middleware,
    current,
    create,
    destroy,
    slide,
    expiresIn,
    updateSnapshot(req, tokens) {
      const snap = snapshots.get(req);
      if (snap) snap.tokens = tokens;
    },
    sessionIdFromCookie,
    clearCookie,
    nowSeconds,
  };
}
