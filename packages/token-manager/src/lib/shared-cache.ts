// The cross-process token cache in Redis. Every operation is best effort: a Redis that is down,
// slow or not ready makes the operation report "unavailable" within `commandTimeout`, and the
// manager carries on with its per-process cache and a direct token request.
import { randomBytes } from 'node:crypto';
import type { Emitter } from './events.js';
import { Sealer } from './seal.js';
import type { ResolvedSharedCache } from './shared-cache-config.js';
import type { TokenManagerLogger } from './types.js';

/** A cached token (memory or shared), times in epoch milliseconds of the manager's clock. */
export interface CacheEntry {
  accessToken: string;
  /** `DPoP` for a DPoP client's token (the cache key includes the key's thumbprint). */
  tokenType: 'Bearer' | 'DPoP';
  scope: string | undefined;
  obtainedAt: number;
  expiresAt: number;
  renewAt: number;
}

/** Result of a Redis operation that may not have happened. */
export const UNAVAILABLE = Symbol('unavailable');
type Maybe<T> = T | typeof UNAVAILABLE;

// Deletes a key only while it still holds the caller's value: a lock released late (after it
// expired and someone else took it) or an invalidation racing a renewal must not delete another's.
const DELETE_IF_EQUAL = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const DELETE_IF_PREFIX = `local v = redis.call('GET', KEYS[1]) if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/** A held renewal lock. */
export interface HeldLock {
  release(): Promise<void>;
}

export class SharedCache {
  readonly #config: ResolvedSharedCache;
  readonly #sealer: Sealer;
  readonly #events: Emitter;
  readonly #logger: TokenManagerLogger;
  #degraded = false;

  constructor(config: ResolvedSharedCache, events: Emitter, logger: TokenManagerLogger) {
    this.#config = config;
    this.#sealer = new Sealer(config.secrets);
    this.#events = events;
    this.#logger = logger;
  }

  get waitTimeoutMs(): number {
    return this.#config.waitTimeoutMs;
  }

  #tokenKey(hash: string): string {
    return `${this.#config.keyPrefix}token:${hash}`;
  }

  #lockKey(hash: string): string {
    return `${this.#config.keyPrefix}lock:${hash}`;
  }

  /** Runs one command with a deadline; never throws, never waits on a client that is not ready. */
  async #run<T>(operation: string, command: () => Promise<T>): Promise<Maybe<T>> {
    const redis = this.#config.redis;
    if (!redis.isReady) return this.#degrade(operation, 'client not ready');
    let timer: NodeJS.Timeout | undefined;
    try {
      const result = await Promise.race([
        command(),
        new Promise<typeof UNAVAILABLE>((resolve) => {
          timer = setTimeout(() => resolve(UNAVAILABLE), this.#config.commandTimeoutMs);
        }),
      ]);
      if (result === UNAVAILABLE) return this.#degrade(operation, 'timeout');
      if (this.#degraded) {
        this.#degraded = false;
        this.#logger.info({ operation }, 'token-manager: shared cache is back');
      }
      return result;
    } catch (error) {
      return this.#degrade(operation, error instanceof Error ? error.message : 'error');
    } finally {
      clearTimeout(timer);
    }
  }

  #degrade(operation: string, reason: string): typeof UNAVAILABLE {
    // Log the transition once, not every call while Redis is down; the event fires every time.
    if (!this.#degraded) {
      this.#degraded = true;
      this.#logger.warn(
        { operation, reason },
        'token-manager: shared cache unavailable, using the per-process cache',
      );
    }
    this.#events.emit('cache.degraded', { operation, reason });
    return UNAVAILABLE;
  }

  /** Reads an entry; `undefined` when absent or unreadable (e.g. sealed with an unknown secret). */
  async get(hash: string): Promise<Maybe<CacheEntry | undefined>> {
    const key = this.#tokenKey(hash);
    const value = await this.#run('get', () => this.#config.redis.get(key));
    if (value === UNAVAILABLE) return UNAVAILABLE;
    if (typeof value !== 'string') return undefined;
    const plaintext = this.#sealer.open(value, key);
    if (plaintext === undefined) return undefined;
    try {
      const parsed = JSON.parse(plaintext) as Partial<CacheEntry>;
      if (
        typeof parsed.accessToken !== 'string' ||
        typeof parsed.obtainedAt !== 'number' ||
        typeof parsed.expiresAt !== 'number' ||
        typeof parsed.renewAt !== 'number'
      ) {
        return undefined;
      }
      return {
        accessToken: parsed.accessToken,
        tokenType: parsed.tokenType === 'DPoP' ? 'DPoP' : 'Bearer',
        scope: typeof parsed.scope === 'string' ? parsed.scope : undefined,
        obtainedAt: parsed.obtainedAt,
        expiresAt: parsed.expiresAt,
        renewAt: parsed.renewAt,
      };
    } catch {
      return undefined;
    }
  }

  /** Stores an entry until it expires. */
  async set(hash: string, entry: CacheEntry, ttlMs: number): Promise<void> {
    if (ttlMs < 1) return;
    const key = this.#tokenKey(hash);
    const value = this.#sealer.seal(JSON.stringify(entry), this.#sealer.fingerprint(entry.accessToken), key);
    await this.#run('set', () =>
      this.#config.redis.set(key, value, { expiration: { type: 'PX', value: Math.ceil(ttlMs) } }),
    );
  }

  /** Deletes the entry only if it still holds `accessToken` (another process may have renewed it). */
  async invalidate(hash: string, accessToken: string): Promise<void> {
    const key = this.#tokenKey(hash);
    const prefix = `${this.#sealer.fingerprint(accessToken)}.`;
    await this.#run('invalidate', () =>
      this.#config.redis.eval(DELETE_IF_PREFIX, { keys: [key], arguments: [prefix] }),
    );
  }

  /** Tries to take the renewal lock (SET NX PX with a random value). */
  async acquire(hash: string): Promise<Maybe<HeldLock | undefined>> {
    const key = this.#lockKey(hash);
    const value = randomBytes(16).toString('base64url');
    const result = await this.#run('lock', () =>
      this.#config.redis.set(key, value, {
        condition: 'NX',
        expiration: { type: 'PX', value: this.#config.lockTimeoutMs },
      }),
    );
    if (result === UNAVAILABLE) {
      // The SET may have been applied with its reply lost: clean up in the background, so the
      // lock we may hold does not make other processes wait for nothing.
      void this.#run('unlock', () =>
        this.#config.redis.eval(DELETE_IF_EQUAL, { keys: [key], arguments: [value] }),
      );
      return UNAVAILABLE;
    }
    if (result !== 'OK') return undefined;
    return {
      release: async () => {
        await this.#run('unlock', () =>
          this.#config.redis.eval(DELETE_IF_EQUAL, { keys: [key], arguments: [value] }),
        );
      },
    };
  }
}
