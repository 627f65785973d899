// The session step of every request (SECURITY S1–S6, L13): cookie → verified id → one store read → one
// parse → live check → idle timer slid, returned as a plain LoadedSession value that the token step,
// the proxy and the endpoints take as an argument. Also creating a session at the callback (always a
// new id) and the per-user cap. Every way a session is destroyed here (logout, back-channel logout,
// expiry, the cap, a new sign-in over an old session) goes through `end`, which also drops what this
// process keeps for the session beside the store (O6, B4). The encrypted token record sits beside the session JSON in the store
// and is written only by the token code, so a session write can never roll back a rotated token.
import type { ResolvedBffConfig } from '../config.js';
import { randomId } from '../crypto.js';
import { describeError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { SessionIndex, SessionMatch, SessionStore } from '../store/types.js';
import { createSessionCookie, type SessionCookie } from './cookie.js';
import { type BffSessionData, type LoadedSession, parseSessionData, serializeSessionData } from './data.js';

/** Options of {@link Sessions.load}. */
export interface LoadOptions {
  /** Slide the idle timer (written at most every touchInterval). Default true. */
  readonly slide?: boolean;
  /** Called when the cookie named a session that had expired (it is deleted before this is called). */
  readonly onExpired?: () => void;
}

/** The session step and the session lifecycle of one createBff instance. */
export interface Sessions {
  readonly cookie: SessionCookie;
  /**
   * The live session a Cookie header names, or undefined (no cookie, forged, unknown, expired). An
   * expired session is deleted from the store (S4).
   * @throws BffError `ERR_BFF_STORE_UNAVAILABLE` (503) when the store cannot be read.
   */
  load(cookieHeader: string | undefined, options?: LoadOptions): Promise<LoadedSession | undefined>;
  /**
   * Writes a new session (new random id, L13) holding `data` and the tokens `sealTokens` seals for that
   * id, ends `previousId` (a session the browser held before, possibly planted), then ends the same
   * user's oldest sessions beyond `maxSessionsPerUser` (S6). Returns the id.
   */
  create(
    data: BffSessionData,
    sealTokens: (sessionId: string) => string,
    previousId: string | undefined,
  ): Promise<string>;
  /**
   * Ends a session: deletes it from the store (with its tokens and index entries), then drops what this
   * process keeps for it (the verified cookie, and whatever `forget` of createSessions drops).
   * @throws BffError `ERR_BFF_STORE_UNAVAILABLE` (503) when the store cannot delete it; nothing is
   *   dropped then, as the session lives on.
   */
  end(sessionId: string): Promise<void>;
  /** The sessions matching `match`, parsed (for the admin API); unreadable entries are skipped. */
  list(match: SessionMatch): Promise<{ id: string; data: BffSessionData }[]>;
  /** Seconds until the session expires (idle or absolute, whichever comes first). */
  expiresIn(data: BffSessionData): number;
  nowSeconds(): number;
}

/**
 * Builds the session step for one createBff instance. `forget` drops the in-process state other parts
 * keep for a session (token cache, refresh back-off, rate-bucket keys); it is called once the session
 * is deleted from the store.
 */
export function createSessions(
  config: ResolvedBffConfig,
  store: SessionStore,
  logger: Logger,
  clock: () => number,
  forget: (sessionId: string) => void = () => {},
): Sessions {
  const cookie = rememberLast(createSessionCookie(config.cookieName, config.sessionSecrets));
  const nowSeconds = () => Math.floor(clock() / 1000);
  const expiresIn = (data: BffSessionData) =>
    Math.max(0, Math.min(data.expiresAt, data.lastSeenAt + config.idleTimeout) - nowSeconds());
  // Store TTL: until the session could expire at the earliest possible moment, plus slack for clock skew.
  const ttlFor = (data: BffSessionData) => expiresIn(data) + 5;
  const indexOf = (data: BffSessionData): SessionIndex => ({ iss: data.iss, sub: data.sub, sid: data.sid });
  const touchFailed = (err: unknown) => logger.warn({ err: describeError(err) }, 'bff: session touch failed');

  /** Drops what this process keeps for a session that is gone from the store. */
  const forgetHere = (id: string) => {
    cookie.forget(id);
    forget(id);
  };
  async function end(id: string): Promise<void> {
    await store.destroy(id);
    forgetHere(id);
  }

  async function load(
    cookieHeader: string | undefined,
    options?: LoadOptions,
  ): Promise<LoadedSession | undefined> {
    const id = cookie.idFrom(cookieHeader);
    if (id === undefined) return undefined;
    const stored = await store.get(id);
    if (!stored) {
      // Ended (here, on another instance, or by the store's TTL): a cookie still sent after that would
      // otherwise put the session's entries back (the verified cookie above).
      forgetHere(id);
      return undefined;
    }
    const data = parseSessionData(stored.data);
    if (!data) return undefined;
    if (expiresIn(data) <= 0) {
      // Expired (idle or absolute): delete it now; the request goes on anonymous (S4).
      await end(id);
      options?.onExpired?.();
      return undefined;
    }
    // The idle timer slides at most every touchInterval, written in the background and as an update
    // only: a session ended meanwhile is never brought back.
    const now = nowSeconds();
    if (options?.slide !== false && now - data.lastSeenAt >= config.touchInterval) {
      data.lastSeenAt = now;
      store
        .set(id, { data: serializeSessionData(data), index: indexOf(data), update: true }, ttlFor(data))
        .catch(touchFailed);
    }
    return { id, data, tokens: stored.tokens };
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
          const parsed = stored ? parseSessionData(stored.data) : undefined;
          let createdAt = Number.NEGATIVE_INFINITY; // unreadable: first to go
          if (typeof parsed?.createdAtMs === 'number') createdAt = parsed.createdAtMs;
          else if (typeof parsed?.createdAt === 'number') createdAt = parsed.createdAt * 1000;
          return { id, createdAt, live: stored !== undefined };
        }),
    );
    const live = others.filter((o) => o.live);
    const excess = live.length + 1 - config.maxSessionsPerUser;
    if (excess <= 0) return [];
    live.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const ended = live.slice(0, excess).map((o) => o.id);
    for (const id of ended) await end(id);
    return ended;
  }

  async function create(
    data: BffSessionData,
    sealTokens: (id: string) => string,
    previousId: string | undefined,
  ): Promise<string> {
    if (previousId !== undefined) await end(previousId);
    const id = randomId(32);
    // Tokens are sealed with the new id as associated data, then written with the session in one go.
    await store.set(
      id,
      { data: serializeSessionData(data), index: indexOf(data), tokens: sealTokens(id), update: false },
      ttlFor(data),
    );
    try {
      const ended = await capSessionsOf(data, id);
      if (ended.length > 0)
        logger.info({ count: ended.length }, 'bff: oldest sessions of the user ended (cap)');
    } catch (err) {
      // The new session is written; failing the sign-in now would only lose it. The cap is applied
      // again at the user's next sign-in.
      logger.warn({ err: describeError(err) }, 'bff: per-user session cap not applied');
    }
    return id;
  }

  async function list(match: SessionMatch): Promise<{ id: string; data: BffSessionData }[]> {
    const out: { id: string; data: BffSessionData }[] = [];
    for (const id of await store.find(match)) {
      const stored = await store.get(id);
      const data = stored ? parseSessionData(stored.data) : undefined;
      if (data) out.push({ id, data });
    }
    return out;
  }

  return { cookie, load, create, end, list, expiresIn, nowSeconds };
}

/**
 * The session cookie with its last answer remembered: a proxied call reads the same Cookie header twice
 * (its rate bucket, then its session), and the second read is then a string comparison instead of a
 * second parse. The answer is a function of the header alone (the secrets never change while running),
 * so a remembered one is the one a fresh read would give.
 */
function rememberLast(cookie: SessionCookie): SessionCookie {
  let lastHeader: string | undefined;
  let lastId: string | undefined;
  return {
    issue: cookie.issue,
    clear: cookie.clear,
    forget(id) {
      if (id === lastId) {
        lastHeader = undefined;
        lastId = undefined;
      }
      cookie.forget(id);
    },
    retains: (id) => id === lastId || cookie.retains(id),
    idFrom(header) {
      if (header !== undefined && header === lastHeader) return lastId;
      const id = cookie.idFrom(header);
      lastHeader = header;
      lastId = id;
      return id;
    },
  };
}
