// @gatehouse/bff: a backend-for-frontend for single-page apps. Re-exports only; see src/lib.

export type { BackchannelOptions } from './lib/backchannel/index.js';
export {
  type Bff,
  type BffCloseOptions,
  type BffRequestContext,
  createBff,
  type LocalApiOptions,
  type SessionSummary,
} from './lib/bff.js';
export type { BffOptions, FetchLike, ResolvedBffConfig } from './lib/config.js';
export type { BffContext, Logger, SessionUser } from './lib/context.js';
export { BffError, type BffErrorCode, isBffError } from './lib/errors.js';
export type { RateLimitOptions, RemoteApiOptions, RemoteApiTokenType } from './lib/proxy/index.js';
export { createMemoryStore, type MemoryStoreOptions } from './lib/store/memory.js';
export { createRedisStore, type RedisClientLike, type RedisStoreOptions } from './lib/store/redis.js';
export type {
  LockFence,
  RateDecision,
  SessionIndex,
  SessionMatch,
  SessionStore,
  StoredSession,
  StoreLock,
} from './lib/store/types.js';
