import { createHash, KeyObject } from 'node:crypto';
import type { CryptoKey, PrivateKey } from 'openid-client';
import { jwkThumbprint, privateKeyObject, publicJwkOf, type ResolvedDpop, resolveDpop } from './dpop.js';
import { silentLogger } from './events.js';
import type {
  ClientAuthenticationMethod,
  PrivateJwk,
  SharedCacheRedisClient,
  TokenClientOptions,
  TokenManagerLogger,
  TokenManagerOptions,
} from './types.js';

/** A client after validation. */
export interface ResolvedClient {
  readonly name: string;
  readonly issuer: URL | undefined;
  readonly tokenEndpoint: URL | undefined;
  /** Issuer if known, else the token endpoint: the server's identity in cache keys and assertions. */
  readonly serverId: string;
  readonly clientId: string;
  readonly clientSecret: string | undefined;
  readonly authMethod: ClientAuthenticationMethod;
  readonly privateKey: CryptoKey | PrivateKey | PrivateJwk | undefined;
  readonly assertionAudience: 'issuer' | 'token_endpoint';
  readonly assertionTyp: string | undefined;
  readonly scopes: readonly string[];
  readonly resources: readonly string[];
  readonly parameters: Readonly<Record<string, string>>;
  readonly allowHttp: boolean;
  /**
   * Identifies the credentials (auth method + secret, or the public key's thumbprint) so that two
   * configurations with the same `client_id` but different secrets or keys never share a token.
   * A SHA-256 over the secret: it only ever leaves the process keyed (see the cache key).
   */
  readonly credentialId: string;
  /** DPoP key, when configured. */
  readonly dpop: ResolvedDpop | undefined;
}

export interface ResolvedSharedCache {
  readonly redis: SharedCacheRedisClient;
  readonly secrets: readonly string[];
  readonly keyPrefix: string;
  readonly commandTimeoutMs: number;
  readonly lockTimeoutMs: number;
  readonly waitTimeoutMs: number;
}

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
const CLIENT_KEYS = new Set([
  'issuer',
  'tokenEndpoint',
  'clientId',
  'clientSecret',
  'clientAuthentication',
  'privateKey',
  'clientAssertion',
  'scope',
  'resource',
  'parameters',
  'dpop',
  'dangerouslyAllowInsecureHttp',
]);
const RETRY_KEYS = new Set(['attempts', 'baseDelay', 'maxDelay', 'maxRetryAfter', 'cooldown']);
const SHARED_KEYS = new Set([
  'redis',
  'encryptionSecret',
  'keyPrefix',
  'commandTimeout',
  'lockTimeout',
  'waitTimeout',
]);
/** Parameters the manager sets itself; letting `parameters` override them would break the grant. */
const RESERVED_PARAMETERS = new Set([
  'grant_type',
  'scope',
  'resource',
  'client_id',
  'client_secret',
  'client_assertion',
  'client_assertion_type',
]);
const AUTH_METHODS = new Set<ClientAuthenticationMethod>([
  'client_secret_basic',
  'client_secret_post',
  'private_key_jwt',
]);
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

function fail(message: string): never {
  throw new TypeError(`createTokenManager: ${message}`);
}

function rejectUnknown(object: object, allowed: ReadonlySet<string>, where: string): void {
  for (const key of Object.keys(object)) {
    if (!allowed.has(key)) {
      fail(`unknown option ${where}${key}; the known options are ${[...allowed].join(', ')}`);
    }
  }
}

function seconds(value: unknown, name: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    fail(`${name} must be a number of seconds >= ${min}, got ${String(value)}`);
  }
  return value;
}

function flag(value: unknown, name: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') fail(`${name} must be true or false`);
  return value;
}

function url(value: unknown, name: string): URL | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof URL) && typeof value !== 'string') fail(`${name} must be a URL string`);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    fail(`${name} must be an absolute URL, got ${JSON.stringify(String(value))}`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') fail(`${name} must be an https: URL`);
  if (parsed.search || parsed.hash) fail(`${name} must not have a query or fragment`);
  return parsed;
}

/** Splits scopes on whitespace, removes duplicates and sorts them, so the cache key ignores order. */
export function normalizeScopes(value: unknown, name = 'scope'): string[] {
  if (value === undefined) return [];
  const parts =
    typeof value === 'string'
      ? value.split(/\s+/)
      : Array.isArray(value)
        ? value.flatMap((part: unknown) => {
            if (typeof part !== 'string') fail(`${name} must be a string or an array of strings`);
            return part.split(/\s+/);
          })
        : fail(`${name} must be a string or an array of strings`);
  return [...new Set(parts.filter(Boolean))].sort();
}

/** Resource indicators must be absolute URIs without a fragment (RFC 8707 §2). */
export function normalizeResources(value: unknown, name = 'resource'): string[] {
  if (value === undefined) return [];
  const list =
    typeof value === 'string'
      ? [value]
      : Array.isArray(value)
        ? value
        : fail(`${name} must be a string or an array of strings`);
  const out = new Set<string>();
  for (const item of list) {
    if (typeof item !== 'string' || !URL.canParse(item) || item.includes('#')) {
      fail(`${name} values must be absolute URIs without a fragment (RFC 8707), got ${JSON.stringify(item)}`);
    }
    out.add(item);
  }
  return [...out].sort();
}

function resolveClient(name: string, raw: TokenClientOptions): ResolvedClient {
  const where = `clients.${name}.`;
  if (typeof raw !== 'object' || raw === null) fail(`clients.${name} must be an object`);
  rejectUnknown(raw, CLIENT_KEYS, where);
  if (typeof raw.clientId !== 'string' || raw.clientId === '')
    fail(`${where}clientId must be a non-empty string`);

  const issuer = url(raw.issuer, `${where}issuer`);
  const tokenEndpoint = url(raw.tokenEndpoint, `${where}tokenEndpoint`);
  if (!issuer && !tokenEndpoint) fail(`${where}issuer (for discovery) or ${where}tokenEndpoint is required`);
  if (
    raw.dangerouslyAllowInsecureHttp !== undefined &&
    typeof raw.dangerouslyAllowInsecureHttp !== 'boolean'
  ) {
    fail(`${where}dangerouslyAllowInsecureHttp must be a boolean`);
  }
  const allowHttp = raw.dangerouslyAllowInsecureHttp === true;
  for (const [label, u] of [
    ['issuer', issuer],
    ['tokenEndpoint', tokenEndpoint],
  ] as const) {
    if (u?.protocol === 'http:' && !LOOPBACK.has(u.hostname) && !allowHttp) {
      fail(
        `${where}${label} uses plain http on a non-loopback host; use https (or set dangerouslyAllowInsecureHttp for a lab setup)`,
      );
    }
  }

  if (raw.privateKey !== undefined && (typeof raw.privateKey !== 'object' || raw.privateKey === null)) {
    fail(`${where}privateKey must be a private CryptoKey, { key, kid } or a private JWK`);
  }
  const authMethod = raw.clientAuthentication ?? (raw.privateKey ? 'private_key_jwt' : 'client_secret_basic');
  let privateKeyThumbprint: string | undefined;
  if (!AUTH_METHODS.has(authMethod)) {
    fail(
      `${where}clientAuthentication must be one of ${[...AUTH_METHODS].join(', ')}, got ${JSON.stringify(authMethod)}`,
    );
  }
  if (authMethod === 'private_key_jwt') {
    if (!raw.privateKey) fail(`${where}privateKey is required for private_key_jwt`);
    if (raw.clientSecret !== undefined)
      fail(`${where}clientSecret must not be set together with private_key_jwt`);
    // Import it now: a malformed key fails at creation (not on the first token request), and its
    // thumbprint identifies the credentials in the cache key.
    const input = raw.privateKey as { key?: unknown };
    if (input instanceof KeyObject) {
      fail(
        `${where}privateKey must be a CryptoKey or a private JWK (e.g. keyObject.export({ format: 'jwk' }))`,
      );
    }
    privateKeyThumbprint = jwkThumbprint(
      publicJwkOf(
        privateKeyObject(
          'kty' in input || !('key' in input) ? raw.privateKey : input.key,
          fail,
          `${where}privateKey`,
        ),
      ),
    );
  } else {
    if (typeof raw.clientSecret !== 'string' || raw.clientSecret === '') {
      fail(`${where}clientSecret must be a non-empty string for ${authMethod}`);
    }
    if (raw.privateKey) fail(`${where}privateKey is only used with clientAuthentication: 'private_key_jwt'`);
  }

  const assertion = raw.clientAssertion ?? {};
  if (typeof assertion !== 'object' || assertion === null) fail(`${where}clientAssertion must be an object`);
  rejectUnknown(assertion, new Set(['audience', 'typ']), `${where}clientAssertion.`);
  const audience = assertion.audience ?? (issuer ? 'issuer' : 'token_endpoint');
  if (audience !== 'issuer' && audience !== 'token_endpoint') {
    fail(`${where}clientAssertion.audience must be 'issuer' or 'token_endpoint'`);
  }
  if (audience === 'issuer' && !issuer)
    fail(`${where}clientAssertion.audience 'issuer' needs ${where}issuer`);
  const typ = assertion.typ === undefined ? 'client-authentication+jwt' : assertion.typ;
  if (typ !== false && (typeof typ !== 'string' || typ === '')) {
    fail(`${where}clientAssertion.typ must be a non-empty string or false`);
  }

  const parameters: Record<string, string> = {};
  if (raw.parameters !== undefined) {
    if (typeof raw.parameters !== 'object' || raw.parameters === null)
      fail(`${where}parameters must be an object`);
    for (const [key, value] of Object.entries(raw.parameters)) {
      if (RESERVED_PARAMETERS.has(key)) {
        fail(
          `${where}parameters.${key} is set by the manager; use the scope/resource/client options instead`,
        );
      }
      if (typeof value !== 'string') fail(`${where}parameters.${key} must be a string`);
      parameters[key] = value;
    }
  }

  const dpop = resolveDpop(raw.dpop, fail, where);
  const credentialId = createHash('sha256')
    .update(JSON.stringify([authMethod, privateKeyThumbprint ?? raw.clientSecret]))
    .digest('base64url');

  return Object.freeze({
    name,
    issuer,
    tokenEndpoint,
    // The issuer identifier exactly as given (URL parsing would add a trailing slash): it is
    // compared as a string, e.g. as the assertion `aud`.
    serverId: issuer ? (typeof raw.issuer === 'string' ? raw.issuer : issuer.href) : tokenEndpoint!.href,
    clientId: raw.clientId,
    clientSecret: raw.clientSecret,
    authMethod,
    privateKey: raw.privateKey,
    assertionAudience: audience,
    assertionTyp: typ === false ? undefined : typ,
    scopes: Object.freeze(normalizeScopes(raw.scope, `${where}scope`)),
    resources: Object.freeze(normalizeResources(raw.resource, `${where}resource`)),
    parameters: Object.freeze(parameters),
    allowHttp,
    credentialId,
    dpop,
  });
}

function resolveSharedCache(
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
