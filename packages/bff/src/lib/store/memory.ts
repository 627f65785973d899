// The embedded default store: one process, bounded, TTL'd. Fine for development and single-instance
// hosts; several instances behind a load balancer need a shared store (Redis).

import { randomBytes } from 'node:crypto';
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
  /** Most replay marks (and locks) kept. Default 10 000 each. */
  maxEntries?: number;
  /** Clock in epoch milliseconds. Default `Date.now`. */
  clock?: () => number;
}

interface SessionEntry {
  data: string;
  tokens: string | undefined;
  index: SessionIndex | undefined;
  expiresAt: number;
}

interface Expiring {
  value: string;
  expiresAt: number;
}

const subKey = (iss: string, sub: string) => `${iss}\u0000${sub}`;

/** In-process token buckets: the memory store's `consumeRate`, and the fallback for stores without one. */
export interface TokenBuckets {
  consume(key: string, capacity: number, refillPerSecond: number): RateDecision;
  /** Drops buckets that are full again (an absent bucket reads as full). */
  sweep(): void;
}

/** Token buckets in a bounded Map (oldest dropped first beyond `maxEntries`; a dropped bucket is full). */
export function createTokenBuckets(now: () => number, maxEntries: number): TokenBuckets {
  const buckets = new Map<string, { tokens: number; at: number; fullAt: number }>();
  return {
    consume(key, capacity, refillPerSecond) {
      const t = now();
      const bucket = buckets.get(key);
      let tokens = capacity;
      if (bucket) {
        buckets.delete(key); // re-inserted below: Map order is last use
        tokens = Math.min(capacity, bucket.tokens + (Math.max(0, t - bucket.at) / 1000) * refillPerSecond);
      } else if (buckets.size >= maxEntries) {
        const oldest = buckets.keys().next();
        if (!oldest.done) buckets.delete(oldest.value);
      }
      const allowed = tokens >= 1;
      if (allowed) tokens -= 1;
      buckets.set(key, { tokens, at: t, fullAt: t + ((capacity - tokens) / refillPerSecond) * 1000 });
      return { allowed, retryAfter: allowed ? 0 : (1 - tokens) / refillPerSecond };
    },
    sweep() {
      const t = now();
      for (const [key, bucket] of buckets) if (bucket.fullAt <= t) buckets.delete(key);
    },
  };
}

/**
 * Creates the in-memory session store. Maps iterate in insertion order, so re-inserting on access
 * gives LRU eviction for free.
 */
export function createMemoryStore(options: MemoryStoreOptions = {}): SessionStore {
  const maxSessions = options.maxSessions ?? 10_000;
  const maxEntries = options.maxEntries ?? 10_000;
  if (!Number.isInteger(maxSessions) || maxSessions < 1)
    throw new TypeError('createMemoryStore: `maxSessions` must be a positive integer');
  if (!Number.isInteger(maxEntries) || maxEntries < 1)
    throw new TypeError('createMemoryStore: `maxEntries` must be a positive integer');
  const now = options.clock ?? Date.now;

  const sessions = new Map<string, SessionEntry>();
  const bySub = new Map<string, Set<string>>();
  const bySid = new Map<string, Set<string>>();
  const claims = new Map<string, Expiring>();
  const locks = new Map<string, Expiring>();
  const rates = createTokenBuckets(now, maxEntries);

  const addIndex = (map: Map<string, Set<string>>, key: string, id: string) => {
    let set = map.get(key);
    if (!set) {
      set = new Set();
      map.set(key, set);
    }
    set.add(id);
  };
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
  const drop = (id: string) => {
    const entry = sessions.get(id);
    if (!entry) return;
    sessions.delete(id);
    unindex(id, entry.index);
  };
  const live = (id: string): SessionEntry | undefined => {
    const entry = sessions.get(id);
    if (!entry) return undefined;
    if (entry.expiresAt <= now()) {
      drop(id);
      return undefined;
    }
    return entry;
  };
  // Bounded map with TTL: expired entries go first, then the oldest.
  const putBounded = (map: Map<string, Expiring>, key: string, value: string, ttlSeconds: number) => {
    map.delete(key);
    if (map.size >= maxEntries) {
      const t = now();
      for (const [k, v] of map) {
        if (v.expiresAt <= t || map.size >= maxEntries) map.delete(k);
        else break;
      }
    }
    map.set(key, { value, expiresAt: now() + ttlSeconds * 1000 });
  };
  const getLive = (map: Map<string, Expiring>, key: string): Expiring | undefined => {
    const entry = map.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= now()) {
      map.delete(key);
      return undefined;
    }
    return entry;
  };

  // Expired sessions are also swept periodically so an idle store does not hold memory forever.
  const sweep = setInterval(() => {
    const t = now();
    for (const [id, entry] of sessions) if (entry.expiresAt <= t) drop(id);
    for (const map of [claims, locks]) for (const [k, v] of map) if (v.expiresAt <= t) map.delete(k);
    rates.sweep();
  }, 60_000);
  sweep.unref();

  return {
    kind: 'memory',
    async get(id): Promise<StoredSession | undefined> {
      const entry = live(id);
      if (!entry) return undefined;
      // LRU: move to the end.
      sessions.delete(id);
      sessions.set(id, entry);
      return { data: entry.data, tokens: entry.tokens };
    },
    async set(id, value, ttlSeconds) {
      const previous = live(id);
      if (value.update && !previous) return false;
      if (previous) {
        sessions.delete(id);
        unindex(id, previous.index);
      } else if (sessions.size >= maxSessions) {
        const oldest = sessions.keys().next();
        if (!oldest.done) drop(oldest.value);
      }
      const entry: SessionEntry = {
        data: value.data,
        tokens: value.tokens ?? previous?.tokens,
        index: value.index,
        expiresAt: now() + ttlSeconds * 1000,
      };
      sessions.set(id, entry);
      if (value.index) {
        addIndex(bySub, subKey(value.index.iss, value.index.sub), id);
        if (value.index.sid !== undefined) addIndex(bySid, subKey(value.index.iss, value.index.sid), id);
      }
      return true;
    },
    async setTokens(id, tokens, fence) {
      const entry = live(id);
      if (!entry) return false;
      if (fence && getLive(locks, fence.key)?.value !== fence.token) return false;
      entry.tokens = tokens;
      return true;
    },
    async destroy(id) {
      drop(id);
    },
    async find(match: SessionMatch) {
      const pick = (ids: Set<string> | undefined) => [...(ids ?? [])].filter((id) => live(id) !== undefined);
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
      if (getLive(claims, key)) return false;
      putBounded(claims, key, '1', ttlSeconds);
      return true;
    },
    async lock(key, ttlSeconds): Promise<StoreLock | undefined> {
      if (getLive(locks, key)) return undefined;
      const token = randomBytes(16).toString('base64url');
      locks.set(key, { value: token, expiresAt: now() + ttlSeconds * 1000 });
      return {
        key,
        token,
        async release() {
          if (locks.get(key)?.value === token) locks.delete(key);
        },
        async extend(seconds) {
          const held = getLive(locks, key);
          if (held?.value !== token) return false;
          held.expiresAt = now() + seconds * 1000;
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
