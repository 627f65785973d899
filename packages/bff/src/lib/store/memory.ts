// The embedded default store: one process, bounded, TTL'd. Fine for development and single-instance
// hosts; several instances behind a load balancer need a shared store (Redis).

import { randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { type MarkPurpose, markPurpose } from './marks.js';
import type {
  RateDecision,
  SessionIndex,
  SessionMatch,
  SessionStore,
  StoredSession,
  StoreLock,
} from './types.js';

/** Options of {@link createMemoryStore}. */
export interface MemoryStoreOptions {
  /** Most sessions kept; the least recently used one is evicted beyond it. Default 10 000. */
  maxSessions?: number;
  /**
   * Most single-use marks kept per purpose (login states, back-channel logout `jti`s, extension marks),
   * and most locks and rate buckets. Default 10 000 each. A `jti` or extension mark is never dropped
   * before its TTL (at the bound new ones are refused, and the BFF answers 503, until some expire); the
   * oldest login state is forgotten instead (the OP's single-use codes make that safe).
   */
  maxEntries?: number;
  /** Clock in epoch milliseconds. Default `Date.now`. */
  clock?: () => number;
}

interface SessionEntry {
  data: string;
  tokens: string | undefined;
  index: SessionIndex | undefined;
}

const subKey = (iss: string, sub: string) => `${iss}\u0000${sub}`;

/** A lifetime in seconds as lru-cache wants it: whole milliseconds, at least 1 (0 would mean "forever"). */
const ttlMs = (seconds: number) => Math.max(1, Math.ceil(seconds * 1000));

/**
 * lru-cache options shared by the store's maps: the store's clock (epoch ms, so never 0, which
 * lru-cache reads as "no TTL") checked on every read without a timer, so an injected clock rules.
 */
const onClock = (now: () => number) => ({ ttlResolution: 0, perf: { now } }) as const;

/**
 * Single-use marks of one purpose (SECURITY B2, L4, S6). What happens at the bound depends on the purpose:
 * - back-channel logout `jti`s and extension marks are never dropped before their TTL: a replay cache
 *   that forgets would accept the replay it exists to refuse. At the bound the expired ones go and, if it
 *   is still full, the new mark is rejected; the BFF then answers 503 and ends nothing (the OP retries).
 * - login states evict the oldest. Anyone can make one (a callback with a fresh transaction cookie from
 *   /bff/login), so refusing at the bound would let ~15 bogus callbacks a second hold every sign-in off.
 *   Forgetting an old state costs no safety: a replayed callback still carries its code, which the OP
 *   redeems only once (RFC 6749 §4.1.2), so the replay fails at the token endpoint.
 */
function createMarks(now: () => number, max: number, purpose: MarkPurpose) {
  const marks = new LRUCache<string, true>({ max, ...onClock(now) });
  const evicts = purpose === 'login-state';
  // A purge scans every mark (~0.6 ms at 10 000): at most one per second while full, so a flood of
  // refused marks costs a map look-up each, not a scan each. A place freed meanwhile waits ≤ 1 s.
  let nextPurge = 0;
  return {
    claim(key: string, ttlSeconds: number): boolean {
      if (marks.has(key)) return false;
      if (!evicts && marks.size >= max) {
        if (now() >= nextPurge) {
          marks.purgeStale();
          nextPurge = now() + 1000;
        }
        if (marks.size >= max) {
          throw new Error(
            `memory store: ${max} unexpired single-use marks for ${purpose}; refusing a new one rather than forgetting one (raise maxEntries, or use a shared store)`,
          );
        }
      }
      marks.set(key, true, { ttl: ttlMs(ttlSeconds) });
      return true;
    },
    sweep() {
      marks.purgeStale();
    },
  };
}

/** In-process token buckets: the memory store's `consumeRate`, and the fallback for stores without one. */
export interface TokenBuckets {
  consume(key: string, capacity: number, refillPerSecond: number): RateDecision;
  /** Drops buckets that are full again (an absent bucket reads as full). */
  sweep(): void;
}

/**
 * Token buckets in an LRU cache (the least recently used dropped beyond `maxEntries`; a dropped bucket
 * is full). Each bucket lives until it would be full again, so an expired one reads as full too.
 */
export function createTokenBuckets(now: () => number, maxEntries: number): TokenBuckets {
  const buckets = new LRUCache<string, { tokens: number; at: number }>({ max: maxEntries, ...onClock(now) });
  return {
    consume(key, capacity, refillPerSecond) {
      const t = now();
      const bucket = buckets.get(key);
      const tokens = bucket
        ? Math.min(capacity, bucket.tokens + (Math.max(0, t - bucket.at) / 1000) * refillPerSecond)
        : capacity;
      const allowed = tokens >= 1;
      const left = allowed ? tokens - 1 : tokens;
      buckets.set(key, { tokens: left, at: t }, { ttl: ttlMs((capacity - left) / refillPerSecond) });
      return { allowed, retryAfter: allowed ? 0 : (1 - left) / refillPerSecond };
    },
    sweep() {
      buckets.purgeStale();
    },
  };
}

/**
 * Creates the in-memory session store: LRU caches with per-entry TTLs (lru-cache), and indexes by
 * `sub` and `sid` that follow every session out, whether destroyed, expired or evicted.
 */
export function createMemoryStore(options: MemoryStoreOptions = {}): SessionStore {
  const maxSessions = options.maxSessions ?? 10_000;
  const maxEntries = options.maxEntries ?? 10_000;
  if (!Number.isInteger(maxSessions) || maxSessions < 1)
    throw new TypeError('createMemoryStore: `maxSessions` must be a positive integer');
  if (!Number.isInteger(maxEntries) || maxEntries < 1)
    throw new TypeError('createMemoryStore: `maxEntries` must be a positive integer');
  const now = options.clock ?? Date.now;

  const bySub = new Map<string, Set<string>>();
  const bySid = new Map<string, Set<string>>();
  const removeIndex = (map: Map<string, Set<string>>, key: string, id: string) => {
    const set = map.get(key);
    if (!set) return;
    set.delete(id);
    if (set.size === 0) map.delete(key);
  };
  const unindex = (id: string, index: SessionIndex | undefined) => {
    if (!index) return;
    removeIndex(bySub, subKey(index.iss, index.sub), id);
    if (index.sid !== undefined) removeIndex(bySid, subKey(index.iss, index.sid), id);
  };
  const addIndex = (map: Map<string, Set<string>>, key: string, id: string) => {
    let set = map.get(key);
    if (!set) {
      set = new Set();
      map.set(key, set);
    }
    set.add(id);
  };

  const sessions = new LRUCache<string, SessionEntry>({
    max: maxSessions,
    ...onClock(now),
    // Evicted, expired or destroyed: out of the index too. An overwrite re-indexes in set().
    noDisposeOnSet: true,
    dispose: (entry, id) => unindex(id, entry.index),
  });
  // Single-use marks, bounded per purpose (S6): a flood of login-state marks, which anyone can make,
  // can neither push out nor block the back-channel logout's jti marks, nor hold sign-ins off.
  const marks: Record<MarkPurpose, ReturnType<typeof createMarks>> = {
    'login-state': createMarks(now, maxEntries, 'login-state'),
    'logout-jti': createMarks(now, maxEntries, 'logout-jti'),
    other: createMarks(now, maxEntries, 'other'),
  };
  // Locks: bounded, each with its own TTL.
  const locks = new LRUCache<string, string>({ max: maxEntries, ...onClock(now) });
  const rates = createTokenBuckets(now, maxEntries);

  // Expired entries are also swept periodically so an idle store does not hold memory forever.
  const sweep = setInterval(() => {
    sessions.purgeStale();
    for (const purpose of Object.values(marks)) purpose.sweep();
    locks.purgeStale();
    rates.sweep();
  }, 60_000);
  sweep.unref();

  return {
    kind: 'memory',
    async get(id): Promise<StoredSession | undefined> {
      const entry = sessions.get(id); // a read makes the session the most recently used
      return entry && { data: entry.data, tokens: entry.tokens };
    },
    async set(id, value, ttlSeconds) {
      const previous = sessions.get(id);
      if (value.update && !previous) return false;
      if (ttlSeconds <= 0) {
        // Written and gone at once, as in any store with TTLs (lru-cache would read 0 as "forever").
        sessions.delete(id);
        return true;
      }
      if (previous) unindex(id, previous.index);
      if (value.index) {
        addIndex(bySub, subKey(value.index.iss, value.index.sub), id);
        if (value.index.sid !== undefined) addIndex(bySid, subKey(value.index.iss, value.index.sid), id);
      }
      const tokens = value.tokens ?? previous?.tokens;
      sessions.set(id, { data: value.data, tokens, index: value.index }, { ttl: ttlMs(ttlSeconds) });
      return true;
    },
    async setTokens(id, tokens, fence) {
      const entry = sessions.peek(id);
      if (!entry) return false;
      if (fence && locks.get(fence.key) !== fence.token) return false;
      entry.tokens = tokens;
      return true;
    },
    async destroy(id) {
      sessions.delete(id);
    },
    async find(match: SessionMatch) {
      const pick = (ids: Set<string> | undefined) => [...(ids ?? [])].filter((id) => sessions.has(id));
      if (match.sid !== undefined) {
        const ids = pick(bySid.get(subKey(match.iss, match.sid)));
        if (match.sub === undefined) return ids;
        const subs = bySub.get(subKey(match.iss, match.sub));
        return ids.filter((id) => subs?.has(id));
      }
      if (match.sub !== undefined) return pick(bySub.get(subKey(match.iss, match.sub)));
      return [];
    },
    async claimOnce(key, ttlSeconds) {
      return marks[markPurpose(key)].claim(key, ttlSeconds);
    },
    async lock(key, ttlSeconds): Promise<StoreLock | undefined> {
      if (locks.has(key)) return undefined;
      const token = randomBytes(16).toString('base64url');
      locks.set(key, token, { ttl: ttlMs(ttlSeconds) });
      return {
        key,
        token,
        async release() {
          if (locks.get(key) === token) locks.delete(key);
        },
        async extend(seconds) {
          if (locks.get(key) !== token) return false;
          locks.set(key, token, { ttl: ttlMs(seconds) });
          return true;
        },
      };
    },
    async consumeRate(key, capacity, refillPerSecond) {
      return rates.consume(key, capacity, refillPerSecond);
    },
    async close() {
      clearInterval(sweep);
    },
  };
}
