// @gatehouse/token-manager: client-credentials access tokens for workers and daemons.

export type { TokenManagerErrorCode } from './lib/errors.js';
export { TokenManagerError } from './lib/errors.js';
export type { TokenManagerEventName, TokenManagerEvents, TokenManagerListener } from './lib/events.js';
export type { TokenManager, TokenScopeOptions } from './lib/manager.js';
export { createTokenManager } from './lib/manager.js';
export type { FetchInput, TokenFetchOptions } from './lib/token-fetch.js';
export { createTokenFetch } from './lib/token-fetch.js';
export type {
  AccessToken,
  ClientAuthenticationMethod,
  DpopAlgorithm,
  DpopGenerateAlgorithm,
  DpopKey,
  DpopOptions,
  GetAccessTokenOptions,
  PrivateJwk,
  RetryOptions,
  SharedCacheOptions,
  SharedCacheRedisClient,
  TokenClientOptions,
  TokenManagerLogger,
  TokenManagerOptions,
  TokenSource,
} from './lib/types.js';
