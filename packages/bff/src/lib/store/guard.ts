// One place that keeps the store contract's promise "a store failure answers 503": every rejection of
// the wrapped store becomes BffError ERR_BFF_STORE_UNAVAILABLE (the cause kept), so code that reads or
// writes sessions needs no try/catch of its own and a host's custom store gets the same treatment as
// the Redis store.
import { BffError } from '../errors.js';
import { createTokenBuckets } from './memory.js';
import type { RateDecision, SessionStore, StoreLock } from './types.js';

function toUnavailable(err: unknown): BffError {
  if (err instanceof BffError && err.code === 'ERR_BFF_STORE_UNAVAILABLE') return err;
  // Retry-After: 1 tells clients (and load balancers) the outage is expected to be short; a store
  // reconnects within seconds or not at all, and the SPA should not hammer it meanwhile.
  return new BffError('ERR_BFF_STORE_UNAVAILABLE', 'session store unavailable', {
    cause: err,
    retryAfter: 1,
  });
}

function unavailable(err: unknown): never {
  throw toUnavailable(err);
}

async function guarded<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (err) {
    return unavailable(err);
  }
}

/** Wraps `store` so that every failure is a BffError `ERR_BFF_STORE_UNAVAILABLE` (503). */
export function guardStore(store: SessionStore): SessionStore {
  const guardLock = (lock: StoreLock | undefined): StoreLock | undefined =>
    lock && {
      key: lock.key,
      token: lock.token,
      release: () => guarded(() => lock.release()),
      extend: (ttlSeconds) => guarded(() => lock.extend(ttlSeconds)),
    };
  // A custom store without consumeRate still gets rate limiting, per process (documented).
  const consumeRate = store.consumeRate?.bind(store);
  const local = consumeRate ? undefined : createTokenBuckets(Date.now, 10_000);
  // The session read and the rate bucket run on every proxied call: the store's promise with the error
  // mapped, instead of a closure and an async frame per call as `guarded` takes (same result).
  const rate = (key: string, capacity: number, refillPerSecond: number): Promise<RateDecision> => {
    if (!consumeRate)
      return Promise.resolve((local as NonNullable<typeof local>).consume(key, capacity, refillPerSecond));
    try {
      return Promise.resolve(consumeRate(key, capacity, refillPerSecond)).then(undefined, unavailable);
    } catch (err) {
      return Promise.reject(toUnavailable(err));
    }
  };
  return {
    kind: store.kind,
    get: (id) => {
      try {
        return Promise.resolve(store.get(id)).then(undefined, unavailable);
      } catch (err) {
        return Promise.reject(toUnavailable(err));
      }
    },
    set: (id, value, ttlSeconds) => guarded(() => store.set(id, value, ttlSeconds)),
    setTokens: (id, tokens, fence) => guarded(() => store.setTokens(id, tokens, fence)),
    destroy: (id) => guarded(() => store.destroy(id)),
    find: (match) => guarded(() => store.find(match)),
    claimOnce: (key, ttlSeconds) => guarded(() => store.claimOnce(key, ttlSeconds)),
    lock: async (key, ttlSeconds) => guardLock(await guarded(() => store.lock(key, ttlSeconds))),
    consumeRate: rate,
    close: async () => store.close?.(),
  };
}
