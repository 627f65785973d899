import { LRUCache } from 'lru-cache';
import { createContextResolver, type TokenScopeOptions, unknownClient } from './call-context.js';
import { type ResolvedConfig, resolveConfig } from './config.js';
import { TokenEndpoint } from './endpoint.js';
import { Emitter, type TokenManagerEventName, type TokenManagerListener } from './events.js';
import { createRenewal, toAccessToken } from './renewal.js';
import { type CacheEntry, SharedCache } from './shared-cache.js';
import type { AccessToken, DpopKey, GetAccessTokenOptions, TokenManagerOptions } from './types.js';

export type { TokenScopeOptions } from './call-context.js';

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

/**
 * With `renewAhead`, renew behind the caller only while the cached token has at least this long left
 * (ms): closer to expiry the caller waits for the renewal, so it is never handed a token that dies on
 * the wire.
 */
const RENEW_AHEAD_FLOOR_MS = 500;

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
  // No TTL here: every read compares the entry's own renewAt/expiresAt with the clock anyway, and a
  // hit stays one lookup (an expired entry is overwritten by its renewal or falls out as least used).
  const memory = new LRUCache<string, CacheEntry>({ max: MEMORY_MAX });
  const context = createContextResolver(endpoints, config.sharedCache?.secrets ?? []);
  const renewal = createRenewal({ config, events, memory, shared });

  /** Cache hits share one frozen result per entry: no allocation on the hot path. */
  const hitResults = new WeakMap<CacheEntry, AccessToken>();

  function memoryHit(entry: CacheEntry): AccessToken {
    let hit = hitResults.get(entry);
    if (!hit) {
      hit = Object.freeze(toAccessToken({ entry, source: 'memory', stale: false }));
      hitResults.set(entry, hit);
    }
    return hit;
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
        if (clock() >= cached.renewAt && !renewal.renewing(ctx)) {
          renewal.flight(ctx, undefined).catch(() => {});
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
      return renewal.flight(ctx, rejected);
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
        return toAccessToken({ entry: cached, source: 'memory', stale: false });
      }
      if (cached?.accessToken === rejectedToken) {
        memory.delete(ctx.hash);
        events.emit('token.evicted', { client: name, reason: 'rejected' });
      }
      return renewal.flight(ctx, rejectedToken);
    },

    async invalidate(name, accessToken, options = {}) {
      const ctx = context(name, options);
      if (memory.get(ctx.hash)?.accessToken === accessToken) {
        memory.delete(ctx.hash);
        events.emit('token.evicted', { client: name, reason: 'rejected' });
      }
      await renewal.sharedInvalidate(ctx, accessToken);
    },

    dpopKey(name) {
      const endpoint = endpoints.get(name);
      if (!endpoint) throw unknownClient(name, endpoints);
      return endpoint.dpop;
    },

    on(event, listener) {
      return events.on(event, listener);
    },
  };
  return Object.freeze(manager);
}
