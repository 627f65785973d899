// The shared (Redis) cache's options (sharedCache), validated into a frozen ResolvedSharedCache.
import { fail, rejectUnknown, seconds } from './option-checks.js';
import type { SharedCacheRedisClient, TokenManagerOptions } from './types.js';

export interface ResolvedSharedCache {
  readonly redis: SharedCacheRedisClient;
  readonly secrets: readonly string[];
  readonly keyPrefix: string;
  readonly commandTimeoutMs: number;
  readonly lockTimeoutMs: number;
  readonly waitTimeoutMs: number;
}

const SHARED_KEYS = new Set([
  'redis',
  'encryptionSecret',
  'keyPrefix',
  'commandTimeout',
  'lockTimeout',
  'waitTimeout',
]);
/**
 * Validates the shared cache options; `requestBudgetMs` (all attempts of one token request) and
 * `timeoutSeconds` size the lock and wait defaults.
 */
export function resolveSharedCache(
  raw: TokenManagerOptions['sharedCache'],
  requestBudgetMs: number,
  timeoutSeconds: number,
): ResolvedSharedCache | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'object' || raw === null) fail('sharedCache must be an object');
  rejectUnknown(raw, SHARED_KEYS, 'sharedCache.');
  const redis = raw.redis;
  if (
    typeof redis !== 'object' ||
    redis === null ||
    typeof redis.get !== 'function' ||
    typeof redis.set !== 'function' ||
    typeof redis.eval !== 'function'
  ) {
    fail('sharedCache.redis must be a node-redis v5 client (createClient from "redis")');
  }
  const secrets = typeof raw.encryptionSecret === 'string' ? [raw.encryptionSecret] : raw.encryptionSecret;
  if (!Array.isArray(secrets) || secrets.length === 0) {
    fail(
      'sharedCache.encryptionSecret is required: tokens are encrypted at rest in Redis (a string of 32+ characters)',
    );
  }
  for (const secret of secrets) {
    if (typeof secret !== 'string' || secret.length < 32) {
      fail(
        'sharedCache.encryptionSecret values must be strings of at least 32 characters (e.g. openssl rand -base64 32)',
      );
    }
  }
  const keyPrefix = raw.keyPrefix ?? 'gatehouse:token-manager:';
  if (typeof keyPrefix !== 'string') fail('sharedCache.keyPrefix must be a string');
  const lockTimeout = seconds(raw.lockTimeout, 'sharedCache.lockTimeout', requestBudgetMs / 1000 + 1, 0.1);
  return Object.freeze({
    redis,
    secrets: Object.freeze([...secrets]),
    keyPrefix,
    commandTimeoutMs: seconds(raw.commandTimeout, 'sharedCache.commandTimeout', 0.5, 0.001) * 1000,
    lockTimeoutMs: lockTimeout * 1000,
    // Long enough for one token request by the lock holder; a holder that takes longer (retrying
    // through an outage, or an orphaned lock) then costs waiters one request each, not a stall.
    waitTimeoutMs:
      seconds(raw.waitTimeout, 'sharedCache.waitTimeout', Math.min(lockTimeout, timeoutSeconds + 1)) * 1000,
  });
}
