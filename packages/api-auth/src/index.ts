// @gatehouse/api-auth: access-token validation for APIs behind a Gatehouse BFF or called by workers.

export type {
  AccessTokenCredentials,
  AccessTokenErrorResponse,
  BearerRequest,
  ChallengeOptions,
} from './lib/bearer.js';
export { extractAccessToken, extractBearerToken, renderAccessTokenError } from './lib/bearer.js';
export type { AccessTokenValidatorOptions, ResolvedConfig } from './lib/config.js';
export { RFC9068_REQUIRED_CLAIMS, subIsClientId } from './lib/config.js';
export type { DPoPRequest } from './lib/dpop.js';
export type { DPoPNonceOptions, DPoPOptions, DPoPPolicy } from './lib/dpop-config.js';
export type { AccessTokenErrorCode, BearerErrorCode } from './lib/errors.js';
export { AccessTokenError } from './lib/errors.js';
export type { RequireAccessTokenOptions } from './lib/express.js';
export { requireAccessToken, requireClient, requireScope, requireUser } from './lib/express.js';
export type { IntrospectionOptions } from './lib/introspection-config.js';
export { ASYMMETRIC_ALGORITHMS } from './lib/option-checks.js';
export type {
  DPoPReplayStore,
  MemoryReplayStoreOptions,
  RedisReplayStoreOptions,
  ReplayRedisClient,
} from './lib/replay.js';
export { createMemoryReplayStore, createRedisReplayStore } from './lib/replay.js';
export type { AccessTokenAuth, AccessTokenClaims, Logger, TokenKind } from './lib/types.js';
export type { AccessTokenValidator } from './lib/validator.js';
export { createAccessTokenValidator } from './lib/validator.js';
