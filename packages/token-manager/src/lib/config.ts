// createTokenManager's options validated once into a frozen ResolvedConfig (durations in ms).
// Clients and the shared cache have their own resolvers (client-config.ts, shared-cache-config.ts).
import { type ResolvedClient, resolveClient } from './client-config.js';
import { silentLogger } from './events.js';
import { fail, flag, rejectUnknown, seconds } from './option-checks.js';
import { type ResolvedSharedCache, resolveSharedCache } from './shared-cache-config.js';
import type { TokenManagerLogger, TokenManagerOptions } from './types.js';

/** The frozen configuration the manager runs on (durations converted to milliseconds). */
export interface ResolvedConfig {
  readonly clients: ReadonlyMap<string, ResolvedClient>;
  readonly renewalMarginMs: number;
  readonly renewAhead: boolean;
  readonly defaultExpiresInMs: number;
  readonly failureBackoffMs: number;
  readonly timeoutSeconds: number;
  readonly retry: {
    readonly attempts: number;
    readonly baseDelayMs: number;
    readonly maxDelayMs: number;
    readonly maxRetryAfterMs: number;
    readonly cooldownMs: number;
  };
  readonly sharedCache: ResolvedSharedCache | undefined;
  readonly fetch: typeof fetch;
  readonly clock: () => number;
  readonly logger: TokenManagerLogger;
}

const TOP_LEVEL = new Set([
  'clients',
  'renewalMargin',
  'renewAhead',
  'defaultExpiresIn',
  'failureBackoff',
  'timeout',
  'retry',
  'sharedCache',
  'fetch',
  'clock',
  'logger',
]);
const RETRY_KEYS = new Set(['attempts', 'baseDelay', 'maxDelay', 'maxRetryAfter', 'cooldown']);

/** Validates the options once and returns the frozen configuration. Throws `TypeError` that says the fix. */
export function resolveConfig(options: TokenManagerOptions): ResolvedConfig {
  if (typeof options !== 'object' || options === null) fail('options must be an object with a `clients` map');
  rejectUnknown(options, TOP_LEVEL, '');
  if (
    typeof options.clients !== 'object' ||
    options.clients === null ||
    Object.keys(options.clients).length === 0
  ) {
    fail(
      'clients must name at least one client, e.g. { clients: { worker: { issuer, clientId, clientSecret } } }',
    );
  }
  const clients = new Map<string, ResolvedClient>();
  for (const [name, client] of Object.entries(options.clients))
    clients.set(name, resolveClient(name, client));

  const retryRaw = options.retry ?? {};
  if (typeof retryRaw !== 'object' || retryRaw === null) fail('retry must be an object');
  rejectUnknown(retryRaw, RETRY_KEYS, 'retry.');
  const attempts = retryRaw.attempts ?? 3;
  if (!Number.isInteger(attempts) || attempts < 1 || attempts > 10)
    fail('retry.attempts must be an integer from 1 to 10');
  const retry = Object.freeze({
    attempts,
    baseDelayMs: seconds(retryRaw.baseDelay, 'retry.baseDelay', 0.25) * 1000,
    maxDelayMs: seconds(retryRaw.maxDelay, 'retry.maxDelay', 2) * 1000,
    maxRetryAfterMs: seconds(retryRaw.maxRetryAfter, 'retry.maxRetryAfter', 60) * 1000,
    cooldownMs: seconds(retryRaw.cooldown, 'retry.cooldown', 2) * 1000,
  });
  const timeoutSeconds = seconds(options.timeout, 'timeout', 5, 0.001);
  const requestBudgetMs = attempts * timeoutSeconds * 1000 + (attempts - 1) * retry.maxDelayMs;

  if (options.fetch !== undefined && typeof options.fetch !== 'function') fail('fetch must be a function');
  if (options.clock !== undefined && typeof options.clock !== 'function') {
    fail('clock must be a function returning milliseconds since the epoch');
  }
  const logger = options.logger ?? silentLogger;
  for (const level of ['debug', 'info', 'warn', 'error'] as const) {
    if (typeof logger[level] !== 'function') fail(`logger.${level} must be a function (pino loggers fit)`);
  }

  return Object.freeze({
    clients,
    renewalMarginMs: seconds(options.renewalMargin, 'renewalMargin', 60) * 1000,
    renewAhead: flag(options.renewAhead, 'renewAhead'),
    defaultExpiresInMs: seconds(options.defaultExpiresIn, 'defaultExpiresIn', 60, 1) * 1000,
    failureBackoffMs: seconds(options.failureBackoff, 'failureBackoff', 10) * 1000,
    timeoutSeconds,
    retry,
    sharedCache: resolveSharedCache(options.sharedCache, requestBudgetMs, timeoutSeconds),
    fetch: options.fetch ?? defaultFetch,
    clock: options.clock ?? Date.now,
    logger,
  });
}

/** Looks the global `fetch` up at call time, so a test or an APM agent that replaces it is honoured. */
const defaultFetch: typeof fetch = (input, init) => globalThis.fetch(input, init);
