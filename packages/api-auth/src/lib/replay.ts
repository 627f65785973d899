// Replay caches for DPoP proof `jti`s (RFC 9449 §11.1): one small Promise interface, an in-memory
// implementation for a single API process and a Redis one for several. Both pass one conformance
// suite (test/support/replay-conformance.ts).
import { LRUCache } from 'lru-cache';
import { AccessTokenError } from './errors.js';

/**
 * Where the validator remembers DPoP proofs it has accepted, so each proof is used once. Implement it
 * to use another backend; it must be atomic across every API instance that shares it.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9449#section-11.1
 */
export interface DPoPReplayStore {
  /**
   * Records `key` for `ttlSeconds` unless it is already recorded. Resolves true the first time and
   * false for a replay; rejects when the backend cannot answer (the request then gets 503).
   */
  claimOnce(key: string, ttlSeconds: number): Promise<boolean>;
}

/** Options of {@link createMemoryReplayStore}. */
export interface MemoryReplayStoreOptions {
  /**
   * Most proofs remembered at once. Beyond it the oldest marks are dropped first (they are the
   * closest to expiry); size it above the DPoP requests one process takes per proof lifetime.
   * Default 100 000.
   */
  maxEntries?: number;
  /** Current time in milliseconds since the epoch. Default `Date.now`. */
  clock?: () => number;
}

/**
 * An in-process replay cache: right for one API process. With several instances behind a load
 * balancer, a proof replayed to another instance would pass; use {@link createRedisReplayStore}.
 */
export function createMemoryReplayStore(options: MemoryReplayStoreOptions = {}): DPoPReplayStore {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('@gatehouse/api-auth: createMemoryReplayStore() options must be an object');
  }
  const maxEntries = options.maxEntries ?? 100_000;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw new TypeError(
      '@gatehouse/api-auth: createMemoryReplayStore(): "maxEntries" must be a positive integer',
    );
  }
  if (options.clock !== undefined && typeof options.clock !== 'function') {
    throw new TypeError('@gatehouse/api-auth: createMemoryReplayStore(): "clock" must be a function');
  }
  const now = options.clock ?? Date.now;
  // Marks are never read back (has() does not refresh them), so the least recently used is the
  // oldest: TTLs are all about one proof lifetime, so it is also (nearly) the first to expire.
  const marks = new LRUCache<string, true>({ max: maxEntries, ttlResolution: 0, perf: { now } });

  return {
    async claimOnce(key, ttlSeconds) {
      if (marks.has(key)) return false;
      // At least 1 ms: lru-cache reads a TTL of 0 as "forever".
      marks.set(key, true, { ttl: Math.max(1, Math.ceil(ttlSeconds * 1000)) });
      return true;
    },
  };
}

/** The part of a node-redis v5 client the Redis replay store uses (`createClient()` satisfies it). */
export interface ReplayRedisClient {
  readonly isReady: boolean;
  sendCommand(args: readonly string[], options?: { timeout?: number }): Promise<unknown>;
}

/** Options of {@link createRedisReplayStore}. */
export interface RedisReplayStoreOptions {
  /** A connected node-redis v5 client. The store never connects or closes it. */
  client: ReplayRedisClient;
  /** Key prefix. Default `gatehouse:api-auth:dpop:`. */
  prefix?: string;
  /** Seconds one Redis command may take; a slower answer counts as unavailable (503). Default 0.5. */
  commandTimeout?: number;
}

/**
 * A replay cache in Redis (one `SET key 1 NX PX ttl` per proof), shared by every API instance that
 * uses the same Redis and prefix. While Redis is down or slow, DPoP requests get 503: a replay is
 * never let through for want of a cache.
 */
export function createRedisReplayStore(options: RedisReplayStoreOptions): DPoPReplayStore {
  const client = options?.client;
  if (!client || typeof client.sendCommand !== 'function') {
    throw new TypeError(
      '@gatehouse/api-auth: createRedisReplayStore() needs `client`: a node-redis client (createClient({ url }) then connect())',
    );
  }
  const prefix = options.prefix ?? 'gatehouse:api-auth:dpop:';
  if (typeof prefix !== 'string') {
    throw new TypeError('@gatehouse/api-auth: createRedisReplayStore(): "prefix" must be a string');
  }
  const seconds = options.commandTimeout ?? 0.5;
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0 || seconds > 60) {
    throw new TypeError(
      '@gatehouse/api-auth: createRedisReplayStore(): "commandTimeout" must be a number of seconds between 0 and 60',
    );
  }
  const timeout = Math.ceil(seconds * 1000);

  return {
    async claimOnce(key, ttlSeconds) {
      // Fail fast while disconnected: node-redis would otherwise queue the command and the request hang.
      if (!client.isReady) {
        throw new AccessTokenError(
          'ERR_API_AUTH_REPLAY_STORE_UNAVAILABLE',
          'the DPoP replay cache is unavailable',
        );
      }
      let reply: unknown;
      try {
        reply = await client.sendCommand(
          ['SET', `${prefix}${key}`, '1', 'NX', 'PX', String(Math.max(1, Math.ceil(ttlSeconds * 1000)))],
          { timeout },
        );
      } catch (cause) {
        throw new AccessTokenError(
          'ERR_API_AUTH_REPLAY_STORE_UNAVAILABLE',
          'the DPoP replay cache is unavailable',
          {
            cause,
          },
        );
      }
      return reply === 'OK';
    },
  };
}
