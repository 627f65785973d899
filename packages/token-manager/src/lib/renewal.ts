// The cache-miss path of the token manager: one renewal per key in this process (T5), remembered
// failures (T6), the shared cache and its cross-process lock, and serving a still-valid token when a
// renewal fails.
import { setTimeout as sleep } from 'node:timers/promises';
import type { LRUCache } from 'lru-cache';
import type { CallContext } from './call-context.js';
import type { ResolvedConfig } from './config.js';
import type { IssuedToken } from './endpoint.js';
import { TokenManagerError } from './errors.js';
import type { Emitter } from './events.js';
import { asTokenManagerError } from './exchange-failure.js';
import { type CacheEntry, type SharedCache, UNAVAILABLE } from './shared-cache.js';
import { checkScope, requestWithRetries } from './token-request.js';
import type { AccessToken, TokenSource } from './types.js';

/** A token and where it came from. */
export interface Outcome {
  entry: CacheEntry;
  source: TokenSource;
  stale: boolean;
}

/** The caller's view of an outcome. */
export function toAccessToken(outcome: Outcome): AccessToken {
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

/** Renewals of one token manager. */
export interface Renewal {
  /** T5: one renewal per key in this process; a caller rejecting a token never accepts it back. */
  flight(ctx: CallContext, rejected: string | undefined): Promise<AccessToken>;
  /** Whether a renewal for this key is under way in this process. */
  renewing(ctx: CallContext): boolean;
  /** Drops `accessToken` from the shared cache under every name of the key. */
  sharedInvalidate(ctx: CallContext, accessToken: string): Promise<void>;
}

/** Creates the renewal path over the manager's memory cache and (optional) shared cache. */
export function createRenewal(deps: {
  config: ResolvedConfig;
  events: Emitter;
  memory: LRUCache<string, CacheEntry>;
  shared: SharedCache | undefined;
}): Renewal {
  const { config, events, memory, shared } = deps;
  const { clock, logger } = config;
  const inflight = new Map<string, Promise<Outcome>>();
  /** Remembered failures (T6): no request for this key until `until`. */
  const blocked = new Map<string, { until: number; error: TokenManagerError }>();

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

  /** Requests a token (with retries), validates it, stores it in memory and the shared cache. */
  async function request(
    ctx: CallContext,
    fallback: CacheEntry | undefined,
    fallbackSource: TokenSource,
  ): Promise<Outcome> {
    let issued: IssuedToken;
    let attempts: number;
    try {
      ({ issued, attempts } = await requestWithRetries(ctx, config.retry, events));
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
    return toAccessToken(outcome!);
  }

  return { flight, renewing: (ctx) => inflight.has(ctx.hash), sharedInvalidate };
}
