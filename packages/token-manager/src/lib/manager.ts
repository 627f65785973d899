import { createHash, createHmac, hkdfSync } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { LRUCache } from 'lru-cache';
import { normalizeResources, normalizeScopes, type ResolvedConfig, resolveConfig } from './config.js';
import { asTokenManagerError, type IssuedToken, TokenEndpoint } from './endpoint.js';
import { TokenManagerError } from './errors.js';
import { Emitter, type TokenManagerEventName, type TokenManagerListener } from './events.js';
import { type CacheEntry, SharedCache, UNAVAILABLE } from './shared-cache.js';
import type {
  AccessToken,
  DpopKey,
  GetAccessTokenOptions,
  TokenManagerOptions,
  TokenSource,
} from './types.js';

/** Scope and resource of a call, when not the client's defaults. */
export type TokenScopeOptions = Pick<GetAccessTokenOptions, 'scope' | 'resource'>;

/** Obtains, caches and renews client-credentials access tokens. Create one with {@link createTokenManager}. */
export interface TokenManager {
  /**
   * Returns an access token for the named client: from the cache while it is fresh, else from one
   * token request shared by every concurrent caller for the same (issuer, client, resource, scopes),
   * in this process and, with a shared cache, across processes.
   * @throws {TokenManagerError} when no token can be obtained and no unexpired one is cached.
   * @throws {TypeError} for an unknown client name or a malformed scope/resource.
   */
  getAccessToken(client: string, options?: GetAccessTokenOptions): Promise<AccessToken>;
  /**
   * The API rejected `rejectedToken` (e.g. `401 invalid_token`): drops it from the caches and returns
   * a different token (a renewal, unless another caller has renewed already).
   * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
   */
  renewAccessToken(client: string, rejectedToken: string, options?: TokenScopeOptions): Promise<AccessToken>;
  /** Drops `accessToken` from the caches if it is still the cached token for that client and scope. */
  invalidate(client: string, accessToken: string, options?: TokenScopeOptions): Promise<void>;
  /**
   * The DPoP key of a client configured with `dpop` (its thumbprint, and proofs for your own HTTP
   * client), or `undefined` for a Bearer client. `createTokenFetch` uses it for you.
   * @throws {TypeError} for an unknown client name.
   * @see https://www.rfc-editor.org/rfc/rfc9449
   */
  dpopKey(client: string): DpopKey | undefined;
  /** Subscribes to an observability event; returns the function that unsubscribes. */
  on<E extends TokenManagerEventName>(event: E, listener: TokenManagerListener<E>): () => void;
  /** The configured client names. */
  readonly clients: readonly string[];
}

interface CallContext {
  endpoint: TokenEndpoint;
  name: string;
  scopes: readonly string[];
  resources: readonly string[];
  /** Key in the memory cache and name of this process's entry in the shared cache. */
  hash: string;
  /** Shared-cache names of the same entry under older cache secrets (read during a rotation). */
  olderHashes: readonly string[];
}

interface Outcome {
  entry: CacheEntry;
  source: TokenSource;
  stale: boolean;
}

/**
 * With `renewAhead`, renew behind the caller only while the cached token has at least this long left
 * (ms): closer to expiry the caller waits for the renewal, so it is never handed a token that dies on
 * the wire.
 */
const RENEW_AHEAD_FLOOR_MS = 500;

/** Memoised call contexts (distinct scope/resource values per call) kept at most. */
const MAX_CONTEXTS = 1000;

/**
 * Tokens kept in memory at most (one per client, scope and resource set); beyond it the least recently
 * used is dropped and simply requested again when next needed.
 */
const MEMORY_MAX = 10_000;

/**
 * Creates a token manager for one or more OAuth clients using the client-credentials grant.
 *
 * @example
 * ```ts
 * const tokens = createTokenManager({
 *   clients: { reports: { issuer: 'https://idp.example', clientId: 'worker', clientSecret, scope: 'api.reports' } },
 * });
 * const { accessToken } = await tokens.getAccessToken('reports');
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-4.4
 */
export function createTokenManager(options: TokenManagerOptions): TokenManager {
  const config: ResolvedConfig = resolveConfig(options);
  const { clock, logger } = config;
  const events = new Emitter(logger);
  const shared = config.sharedCache ? new SharedCache(config.sharedCache, events, logger) : undefined;
  const endpoints = new Map<string, TokenEndpoint>();
  for (const [name, client] of config.clients) {
    endpoints.set(name, new TokenEndpoint(client, config.fetch, config.timeoutSeconds, clock));
  }
  // With a shared cache, key names are an HMAC under a key derived from the cache secret: the
  // credentials are part of the key, and a plain hash of a weak client secret in a Redis key name
  // could be brute-forced offline by anyone who can list the keys. One name per cache secret: the
  // first names what this process writes, the others are read during a secret rotation.
  const keyings = (config.sharedCache?.secrets ?? []).map((secret) =>
    Buffer.from(hkdfSync('sha256', secret, 'gatehouse/token-manager/shared-cache', 'cache key v2', 32)),
  );
  const cacheKeys = (material: string): string[] =>
    keyings.length === 0
      ? [createHash('sha256').update(material).digest('base64url')]
      : keyings.map((key) => createHmac('sha256', key).update(material).digest('base64url'));
  // No TTL here: every read compares the entry's own renewAt/expiresAt with the clock anyway, and a
  // hit stays one lookup (an expired entry is overwritten by its renewal or falls out as least used).
  const memory = new LRUCache<string, CacheEntry>({ max: MEMORY_MAX });
  const inflight = new Map<string, Promise<Outcome>>();
  /** Remembered failures (T6): no request for this key until `until`. */
  const blocked = new Map<string, { until: number; error: TokenManagerError }>();

  // Contexts are memoised: the hot path (a cache hit) should cost a lookup, not a parse and a
  // SHA-256. Keyed by the call's raw scope/resource values; bounded so odd callers cannot grow it.
  const contexts = new LRUCache<string, CallContext>({ max: MAX_CONTEXTS });
  const defaultContexts = new Map<string, CallContext>();

  function context(name: string, options: TokenScopeOptions | undefined): CallContext {
    const scope = options?.scope;
    const resource = options?.resource;
    if (scope === undefined && resource === undefined) {
      const defaults = defaultContexts.get(name);
      if (defaults) return defaults;
    }
    const memoKey =
      (scope === undefined || typeof scope === 'string') &&
      (resource === undefined || typeof resource === 'string')
        ? `${name}\u0000${scope ?? '\u0001'}\u0000${resource ?? '\u0001'}`
        : undefined;
    const memo = memoKey === undefined ? undefined : contexts.get(memoKey);
    if (memo) return memo;
    const endpoint = endpoints.get(name);
    if (!endpoint) {
      throw new TypeError(
        `token manager: unknown client ${JSON.stringify(name)}; configured: ${[...endpoints.keys()].join(', ')}`,
      );
    }
    const client = endpoint.client;
    const scopes = scope === undefined ? client.scopes : normalizeScopes(scope);
    const resources = resource === undefined ? client.resources : normalizeResources(resource);
    // T4: the key is (server, client, credentials, DPoP key, resources, sorted scopes), hashed to
    // keep Redis keys short. The credentials part keeps two configurations with the same client_id
    // but different secrets or keys apart (a wrong secret must never be handed a right one's token).
    const [hash, ...olderHashes] = cacheKeys(
      JSON.stringify([
        client.serverId,
        client.clientId,
        client.credentialId,
        client.dpop?.thumbprint ?? null,
        resources,
        scopes,
      ]),
    );
    const ctx: CallContext = { endpoint, name, scopes, resources, hash: hash!, olderHashes };
    if (scope === undefined && resource === undefined) defaultContexts.set(name, ctx);
    else if (memoKey !== undefined) contexts.set(memoKey, ctx);
    return ctx;
  }

  /** Cache hits share one frozen result per entry: no allocation on the hot path. */
  const hitResults = new WeakMap<CacheEntry, AccessToken>();

  function memoryHit(entry: CacheEntry): AccessToken {
    let hit = hitResults.get(entry);
    if (!hit) {
      hit = Object.freeze(result({ entry, source: 'memory', stale: false }));
      hitResults.set(entry, hit);
    }
    return hit;
  }

  function result(outcome: Outcome): AccessToken {
    const { entry, source, stale } = outcome;
    return {
      accessToken: entry.accessToken,
      tokenType: entry.tokenType,
      expiresAt: new Date(entry.expiresAt),
      scope: entry.scope,
      fromCache: source !== 'idp',
      source,
      stale,
    };
  }

  function adopt(ctx: CallContext, entry: CacheEntry): Outcome {
    memory.set(ctx.hash, entry);
    events.emit('token.cache-hit', {
      client: ctx.name,
      source: 'shared',
      tokenType: entry.tokenType,
      expiresIn: (entry.expiresAt - clock()) / 1000,
    });
    return { entry, source: 'shared', stale: false };
  }

  function staleOr(
    ctx: CallContext,
    error: TokenManagerError,
    fallback: CacheEntry | undefined,
    source: TokenSource,
  ): Outcome {
    const now = clock();
    if (fallback && now < fallback.expiresAt) {
      events.emit('token.stale-served', {
        client: ctx.name,
        expiresIn: (fallback.expiresAt - now) / 1000,
        code: error.code,
      });
      logger.warn(
        { client: ctx.name, code: error.code },
        'token-manager: renewal failed, serving the cached token',
      );
      return { entry: fallback, source, stale: true };
    }
    throw error;
  }

  function backoffMs(attempt: number): number {
    const ceiling = Math.min(config.retry.maxDelayMs, config.retry.baseDelayMs * 2 ** (attempt - 1));
    // "Equal jitter": at least half the exponential delay, so retries never fire back to back, and
    // a random rest so that many processes failing together do not retry in lockstep.
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  async function requestWithRetries(ctx: CallContext): Promise<{ issued: IssuedToken; attempts: number }> {
    const { attempts, maxDelayMs } = config.retry;
    const scope = ctx.scopes.length > 0 ? ctx.scopes.join(' ') : undefined;
    for (let attempt = 1; ; attempt++) {
      events.emit('token.requested', { client: ctx.name, attempt, scope, resource: [...ctx.resources] });
      try {
        return { issued: await ctx.endpoint.request(ctx.scopes, ctx.resources), attempts: attempt };
      } catch (caught) {
        const error = asTokenManagerError(caught, ctx.name);
        let delay: number | undefined;
        if (error.retryable && attempt < attempts) {
          if (error.retryAfter === undefined) delay = backoffMs(attempt);
          else if (error.retryAfter * 1000 <= maxDelayMs) delay = error.retryAfter * 1000;
          // else: the server asks for a longer pause than we wait inside a call; stop here and
          // block the key for that long instead (see `request`).
        }
        events.emit('token.failed', {
          client: ctx.name,
          code: error.code,
          oauthError: error.oauthError,
          upstreamStatus: error.upstreamStatus,
          attempt,
          retryable: error.retryable,
          willRetry: delay !== undefined,
          suppressed: false,
        });
        if (delay === undefined) {
          throw new TokenManagerError(error.code, error.message, {
            client: error.client,
            oauthError: error.oauthError,
            upstreamStatus: error.upstreamStatus,
            retryAfter: error.retryAfter,
            attempts: attempt,
            cause: error.cause,
          });
        }
        await sleep(delay);
      }
    }
  }

  function checkScope(ctx: CallContext, issued: IssuedToken): void {
    // T7: RFC 6749 §5.1: an absent `scope` means the requested scope was granted as is.
    if (issued.scope === undefined || ctx.scopes.length === 0) return;
    const granted = new Set(issued.scope.split(/\s+/));
    const missing = ctx.scopes.filter((scope) => !granted.has(scope));
    if (missing.length > 0) {
      throw new TokenManagerError(
        'ERR_TOKEN_SCOPE_NOT_GRANTED',
        `token for client "${ctx.name}" lacks the requested scope: ${missing.join(' ')}`,
        { client: ctx.name },
      );
    }
  }

  /** Requests a token (with retries), validates it, stores it in memory and the shared cache. */
  async function request(
    ctx: CallContext,
    fallback: CacheEntry | undefined,
    fallbackSource: TokenSource,
  ): Promise<Outcome> {
    let issued: IssuedToken;
    let attempts: number;
    try {
      ({ issued, attempts } = await requestWithRetries(ctx));
      checkScope(ctx, issued);
    } catch (caught) {
      const error = caught instanceof TokenManagerError ? caught : asTokenManagerError(caught, ctx.name);
      const now = clock();
      if (!error.retryable) {
        // T6: a configuration problem; alert once and keep hot loops from hammering the server.
        logger.error(
          { client: ctx.name, code: error.code, oauthError: error.oauthError },
          'token-manager: token request rejected',
        );
        if (config.failureBackoffMs > 0)
          blocked.set(ctx.hash, { until: now + config.failureBackoffMs, error });
      } else {
        // The server asked for a pause (429/503 Retry-After), or our attempts are used up: rest.
        const pause =
          error.retryAfter === undefined
            ? config.retry.cooldownMs
            : Math.min(error.retryAfter * 1000, config.retry.maxRetryAfterMs);
        if (pause > 0) blocked.set(ctx.hash, { until: now + pause, error });
      }
      return staleOr(ctx, error, fallback, fallbackSource);
    }
    const now = clock();
    const lifetimeMs = issued.expiresIn === undefined ? config.defaultExpiresInMs : issued.expiresIn * 1000;
    // Renew `renewalMargin` before expiry, but never in the first half of the lifetime: with a
    // lifetime shorter than twice the margin that would renew on (almost) every call.
    const margin = Math.min(config.renewalMarginMs, lifetimeMs / 2);
    const entry: CacheEntry = {
      accessToken: issued.accessToken,
      tokenType: issued.tokenType,
      scope: issued.scope ?? (ctx.scopes.length > 0 ? ctx.scopes.join(' ') : undefined),
      obtainedAt: now,
      expiresAt: now + lifetimeMs,
      renewAt: now + lifetimeMs - margin,
    };
    blocked.delete(ctx.hash);
    if (lifetimeMs > 0) {
      memory.set(ctx.hash, entry);
      await shared?.set(ctx.hash, entry, lifetimeMs);
    }
    events.emit('token.renewed', {
      client: ctx.name,
      tokenType: entry.tokenType,
      expiresIn: lifetimeMs / 1000,
      scope: entry.scope,
      resource: [...ctx.resources],
      attempts,
    });
    logger.debug(
      { client: ctx.name, tokenType: entry.tokenType, expiresIn: lifetimeMs / 1000, attempts },
      'token-manager: token renewed',
    );
    return { entry, source: 'idp', stale: false };
  }

  /** Reads the shared entry; during a cache-secret rotation also under the older secrets' names. */
  async function sharedGet(ctx: CallContext): ReturnType<SharedCache['get']> {
    const current = await shared!.get(ctx.hash);
    if (current !== undefined) return current;
    for (const older of ctx.olderHashes) {
      const entry = await shared!.get(older);
      if (entry !== undefined) return entry;
    }
    return undefined;
  }

  async function sharedInvalidate(ctx: CallContext, accessToken: string): Promise<void> {
    if (!shared) return;
    await Promise.all([ctx.hash, ...ctx.olderHashes].map((hash) => shared.invalidate(hash, accessToken)));
  }

  /** The cache-miss path: remembered failure, shared cache, cross-process lock, then a request. */
  async function obtain(ctx: CallContext, rejected: string | undefined): Promise<Outcome> {
    const usable = (entry: CacheEntry | undefined): boolean =>
      entry !== undefined && entry.accessToken !== rejected && clock() < entry.renewAt;
    const local = memory.get(ctx.hash);
    let fallback = local && local.accessToken !== rejected ? local : undefined;
    let fallbackSource: TokenSource = 'memory';

    const block = blocked.get(ctx.hash);
    if (block && clock() < block.until) {
      events.emit('token.failed', {
        client: ctx.name,
        code: block.error.code,
        oauthError: block.error.oauthError,
        upstreamStatus: block.error.upstreamStatus,
        attempt: 0,
        retryable: block.error.retryable,
        willRetry: false,
        suppressed: true,
      });
      return staleOr(ctx, block.error, fallback, fallbackSource);
    }
    if (!shared) return request(ctx, fallback, fallbackSource);

    const current = await sharedGet(ctx);
    if (current === UNAVAILABLE) return request(ctx, fallback, fallbackSource);
    if (current && usable(current)) return adopt(ctx, current);
    if (current && current.accessToken === rejected) {
      await sharedInvalidate(ctx, rejected);
    } else if (
      current &&
      clock() < current.expiresAt &&
      (!fallback || current.expiresAt > fallback.expiresAt)
    ) {
      fallback = current;
      fallbackSource = 'shared';
    }

    // One renewal across processes: whoever takes the lock re-reads the cache (another process may
    // have renewed between our read and the lock) and only then requests; the others poll.
    const deadline = performance.now() + shared.waitTimeoutMs;
    let pause = 20;
    while (true) {
      const lock = await shared.acquire(ctx.hash);
      if (lock === UNAVAILABLE) break;
      if (lock) {
        try {
          const again = await sharedGet(ctx);
          if (again !== UNAVAILABLE && again && usable(again)) return adopt(ctx, again);
          return await request(ctx, fallback, fallbackSource);
        } finally {
          await lock.release();
        }
      }
      const remaining = deadline - performance.now();
      if (remaining <= 0) {
        logger.warn(
          { client: ctx.name },
          'token-manager: gave up waiting for another process to renew; requesting',
        );
        break;
      }
      await sleep(Math.min(pause, remaining));
      pause = Math.min(pause * 2, 250);
      const polled = await sharedGet(ctx);
      if (polled === UNAVAILABLE) break;
      if (polled && usable(polled)) return adopt(ctx, polled);
    }
    return request(ctx, fallback, fallbackSource);
  }

  /** T5: one `obtain` per key in this process; a caller rejecting a token never accepts it back. */
  async function flight(ctx: CallContext, rejected: string | undefined): Promise<AccessToken> {
    let outcome: Outcome | undefined;
    for (let round = 0; round < 2; round++) {
      let pending = inflight.get(ctx.hash);
      if (!pending) {
        const started = obtain(ctx, rejected).finally(() => {
          if (inflight.get(ctx.hash) === started) inflight.delete(ctx.hash);
        });
        inflight.set(ctx.hash, started);
        pending = started;
      }
      outcome = await pending;
      if (rejected === undefined || outcome.entry.accessToken !== rejected) break;
    }
    return result(outcome!);
  }

  const manager: TokenManager = {
    clients: Object.freeze([...endpoints.keys()]),

    async getAccessToken(name, options = {}) {
      const ctx = context(name, options);
      const cached = memory.get(ctx.hash);
      let rejected: string | undefined;
      if (options.forceRenewal) {
        if (cached) {
          rejected = cached.accessToken;
          memory.delete(ctx.hash);
          events.emit('token.evicted', { client: name, reason: 'forced' });
        }
      } else if (
        cached &&
        (clock() < cached.renewAt || (config.renewAhead && clock() < cached.expiresAt - RENEW_AHEAD_FLOOR_MS))
      ) {
        // renewAhead: inside the margin the cached token is still valid, so the caller takes it now and
        // one renewal runs behind it (single-flight; a failure is reported by obtain()).
        if (clock() >= cached.renewAt && !inflight.has(ctx.hash)) {
          flight(ctx, undefined).catch(() => {});
        }
        if (events.has('token.cache-hit')) {
          events.emit('token.cache-hit', {
            client: name,
            source: 'memory',
            tokenType: cached.tokenType,
            expiresIn: (cached.expiresAt - clock()) / 1000,
          });
        }
        return memoryHit(cached);
      }
      return flight(ctx, rejected);
    },

    async renewAccessToken(name, rejectedToken, options = {}) {
      const ctx = context(name, options);
      const cached = memory.get(ctx.hash);
      if (cached && cached.accessToken !== rejectedToken && clock() < cached.renewAt) {
        // Another caller has already replaced the rejected token.
        events.emit('token.cache-hit', {
          client: name,
          source: 'memory',
          tokenType: cached.tokenType,
          expiresIn: (cached.expiresAt - clock()) / 1000,
        });
        return result({ entry: cached, source: 'memory', stale: false });
      }
      if (cached?.accessToken === rejectedToken) {
        memory.delete(ctx.hash);
        events.emit('token.evicted', { client: name, reason: 'rejected' });
      }
      return flight(ctx, rejectedToken);
    },

    async invalidate(name, accessToken, options = {}) {
      const ctx = context(name, options);
      if (memory.get(ctx.hash)?.accessToken === accessToken) {
        memory.delete(ctx.hash);
        events.emit('token.evicted', { client: name, reason: 'rejected' });
      }
      await sharedInvalidate(ctx, accessToken);
    },

    dpopKey(name) {
      const endpoint = endpoints.get(name);
      if (!endpoint) {
        throw new TypeError(
          `token manager: unknown client ${JSON.stringify(name)}; configured: ${[...endpoints.keys()].join(', ')}`,
        );
      }
      return endpoint.dpop;
    },

    on(event, listener) {
      return events.on(event, listener);
    },
  };
  return Object.freeze(manager);
}
