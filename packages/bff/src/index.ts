// @gatehouse/bff: a backend-for-frontend for single-page apps. Re-exports only; see src/lib.

export type { BackchannelOptions } from './lib/backchannel/options.js';
export {
  type Bff,
  type BffCloseOptions,
  type BffRequestContext,
  createBff,
  type LocalApiOptions,
  type SessionSummary,
} from './lib/bff.js';
export type { BffOptions } from './lib/bff-options.js';
export type { ResolvedBffConfig } from './lib/config.js';
export type { DpopAlgorithm, DpopOptions } from './lib/dpop/options.js';
export { BffError, type BffErrorCode, isBffError } from './lib/errors.js';
export type { BffContext, BffExtensionContext } from './lib/extension-context.js';
export type { FetchLike } from './lib/http/fetch.js';
export type { Logger } from './lib/logger.js';
export type { RateLimitOptions, RemoteApiOptions, RemoteApiTokenType } from './lib/proxy/options.js';
export type { SessionUser } from './lib/session/data.js';
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
