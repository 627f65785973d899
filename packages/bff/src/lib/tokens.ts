// The session's tokens: encrypted at rest (AES-256-GCM, bound to the session id), decrypted on demand
// and cached in-process briefly, refreshed single-flight: one promise per session in this process and
// a store lock across instances (R2; the refresh itself is refresh/flight.ts). Refresh happens AHEAD
// (R7): a token inside the refresh margin is still used while one background refresh replaces it; only
// a request holding an expired token waits, and at most `httpTimeout`. Failed refreshes back off per
// session and behind one circuit breaker for the OP (refresh/backoff.ts).
import { LRUCache } from 'lru-cache';
import type * as client from 'openid-client';
import type { ResolvedBffConfig } from './config.js';
import { createSealer } from './crypto.js';
import type { AuthorizationServerDpop } from './dpop/authorization-server.js';
import { DpopKey } from './dpop/key.js';
import { BffError, describeError } from './errors.js';
import type { Logger } from './logger.js';
import { createCircuitBreaker, createSessionBackoff } from './refresh/backoff.js';
import { createFlight } from './refresh/flight.js';
import { refreshTimings } from './refresh/timings.js';
import { createUnsavedTokens } from './refresh/unsaved.js';
import type { LoadedSession } from './session/data.js';
import type { SessionStore } from './store/types.js';
import type { TokenRecord } from './token-record.js';

export type { TokenRecord } from './token-record.js';

/** Lifetime assumed when a token response has no `expires_in`. */
const DEFAULT_EXPIRES_IN = 300;
/**
 * A token due for refresh is still sent while it has more than this left (seconds; a tenth of its
 * lifetime for short-lived tokens), so it does not expire on the way to the API.
 */
const USABLE_SKEW = 5;
/** Decrypted records are reused only this long (ms), so plaintext does not linger. */
const CACHE_MS = 5 * 60_000;
const CACHE_MAX = 10_000;
/** Records past CACHE_MS are swept out this often at most (ms), on the decrypting path. */
const SWEEP_MS = 60_000;

/** Token handling for one createBff instance. */
export interface TokenService {
  seal(sessionId: string, record: TokenRecord): string;
  open(sessionId: string, sealed: string | undefined): TokenRecord | undefined;
  /** Builds a record from a token endpoint response. */
  fromResponse(
    response: client.TokenEndpointResponse,
    previous?: TokenRecord,
    resource?: string,
  ): TokenRecord;
  /**
   * The token step: the session's access token for `resource` (the default one when omitted), from the
   * decrypted-record cache, refreshed ahead when due, waited for when expired or `forceRefresh`.
   * After a refresh `session.tokens` holds the new record.
   * @throws BffError `ERR_BFF_SESSION_ENDED` (401), `ERR_BFF_IDP_UNAVAILABLE` (503),
   *   `ERR_BFF_IDP_RESPONSE` (502), `ERR_BFF_STORE_UNAVAILABLE` (503).
   */
  getAccessToken(
    session: LoadedSession,
    options?: { readonly forceRefresh?: boolean | undefined; readonly resource?: string | undefined },
  ): Promise<string>;
  /**
   * The session's DPoP key when its tokens are DPoP-bound (SECURITY D1), from the decrypted-record
   * cache: imported once per session and kept across refreshes.
   */
  senderKey(session: LoadedSession): DpopKey | undefined;
  /** Drops the in-process cache entry (and refresh back-off) of a session. */
  forget(sessionId: string): void;
  /** Whether a decrypted record or a refresh back-off of the session is kept (tests: none outlives it). */
  retains(sessionId: string): boolean;
  /** Resolves when every refresh under way has settled, or after `seconds` (graceful shutdown). */
  drain(seconds: number): Promise<void>;
}

/** Creates the token service. `endSession` destroys a session everywhere (R4, R6). */
export function createTokenService(deps: {
  config: ResolvedBffConfig;
  store: SessionStore;
  logger: Logger;
  clock: () => number;
  getOidcConfiguration: () => Promise<client.Configuration>;
  endSession: (sessionId: string) => Promise<void>;
  dpop: AuthorizationServerDpop;
}): TokenService {
  const { config, store, logger, clock, getOidcConfiguration, endSession } = deps;
  const sealer = createSealer(config.sessionSecrets, 'tokens');
  const now = () => clock() / 1000;
  // Decrypted records, on the BFF's clock (checked on every read, no timer), so the cache ages with the
  // sessions it serves; `key` is the record's DPoP key once a proof was signed with it. A read drops a
  // stale record, but a session that goes quiet is never read again: its record (a few KB of tokens)
  // would stay until CACHE_MAX others pushed it out, so stale records are also swept, at most once a
  // SWEEP_MS, when a record is decrypted (a refresh or a session's first call, never a cache hit).
  const cache = new LRUCache<string, { sealed: string; record: TokenRecord; key?: DpopKey }>({
    max: CACHE_MAX,
    ttl: CACHE_MS,
    ttlResolution: 0,
    perf: { now: clock },
  });
  let sweptAt = clock();
  /**
   * Refreshes under way in this process, with the moment waiting for each stops making sense: every
   * request waits until the same deadline (start + httpTimeout), so while an OP hangs, requests that
   * arrive late are answered at once instead of each waiting a full httpTimeout of its own.
   */
  const flights = new Map<string, { readonly promise: Promise<string>; readonly waitUntil: number }>();

  function seal(sessionId: string, record: TokenRecord): string {
    return sealer.seal(JSON.stringify(record), `tokens:${sessionId}`);
  }

  function open(sessionId: string, sealed: string | undefined): TokenRecord | undefined {
    if (!sealed) return undefined;
    const hit = cache.get(sessionId);
    if (hit && hit.sealed === sealed) return hit.record;
    const plain = sealer.open(sealed, `tokens:${sessionId}`);
    if (plain === undefined) return undefined;
    const record = JSON.parse(plain) as TokenRecord;
    // A refreshed record keeps the session's key: the imported key goes along with it.
    const key = hit?.key && hit.key.toPrivateJwk().d === record.dpop?.d ? hit.key : undefined;
    cache.set(sessionId, { sealed, record, ...(key ? { key } : {}) });
    if (clock() - sweptAt >= SWEEP_MS) {
      sweptAt = clock();
      cache.purgeStale();
    }
    return record;
  }

  /** The record's DPoP key: imported once and kept in the record's cache entry. */
  function keyFor(sessionId: string, record: TokenRecord): DpopKey | undefined {
    if (!record.dpop) return undefined;
    const entry = cache.get(sessionId);
    // A record that is not the cached one (evicted meanwhile) gets a key of its own, once.
    if (entry?.record !== record) return DpopKey.fromJwk(record.dpop);
    entry.key ??= DpopKey.fromJwk(record.dpop);
    return entry.key;
  }

  function senderKey(loaded: LoadedSession): DpopKey | undefined {
    const record = open(loaded.id, loaded.tokens);
    return record && keyFor(loaded.id, record);
  }

  function fromResponse(
    response: client.TokenEndpointResponse,
    previous?: TokenRecord,
    resource?: string,
  ): TokenRecord {
    const ttl = typeof response.expires_in === 'number' ? response.expires_in : DEFAULT_EXPIRES_IN;
    const exp = Math.floor(now()) + ttl;
    const rt = response.refresh_token ?? previous?.rt; // R3: a rotated refresh token replaces the old one
    const idt = response.id_token ?? previous?.idt;
    if (resource !== undefined && previous) {
      return {
        ...previous,
        rt,
        idt,
        res: { ...previous.res, [resource]: { at: response.access_token, exp, ttl } },
      };
    }
    return {
      at: response.access_token,
      exp,
      ttl,
      rt,
      idt,
      ...(previous?.res ? { res: previous.res } : {}),
      ...(previous?.dpop ? { dpop: previous.dpop } : {}),
    };
  }

  type Slot = { at: string; exp: number; ttl?: number };
  const slotOf = (record: TokenRecord, resource: string | undefined): Slot | undefined =>
    resource === undefined ? record : record.res?.[resource];

  // A token that lives shorter than twice the margin is refreshed at half its lifetime instead, so a
  // 60 s token with the default 60 s margin is not refreshed on every single call (R1).
  const due = (slot: Slot) => {
    const margin =
      slot.ttl === undefined ? config.refreshMargin : Math.min(config.refreshMargin, slot.ttl / 2);
    return slot.exp - margin <= now();
  };
  const usable = (slot: Slot) =>
    slot.exp - Math.min(USABLE_SKEW, slot.ttl === undefined ? USABLE_SKEW : slot.ttl / 10) > now();
  const fresh = (record: TokenRecord, resource: string | undefined) => {
    const slot = slotOf(record, resource);
    return slot && !due(slot) ? slot.at : undefined;
  };

  const timings = refreshTimings(config.httpTimeout);
  const backoff = createSessionBackoff(clock);
  const breaker = createCircuitBreaker(clock);
  const unsaved = createUnsavedTokens({
    store,
    logger,
    lockKey: (sessionId) => `refresh:${sessionId}`,
    lockTtl: timings.lockTtl,
  });
  const refresh = createFlight({
    unsaved,
    config,
    store,
    logger,
    timings,
    backoff,
    breaker,
    getOidcConfiguration,
    endSession,
    open,
    seal,
    fromResponse,
    fresh,
    // D1: a DPoP-bound session's refresh carries a proof with the session's own key.
    dpopOptions: async (sessionId, record) => {
      const key = keyFor(sessionId, record);
      return key && deps.dpop.options(await getOidcConfiguration(), key);
    },
  });

  /** The session's refresh for `resource`: joins the one under way in this process, else starts one. */
  function flightFor(loaded: LoadedSession, resource: string | undefined, staleAt: string | undefined) {
    const key = `${loaded.id}\u0000${resource ?? ''}`;
    let flight = flights.get(key);
    if (!flight) {
      flight = {
        promise: refresh(loaded, resource, staleAt).finally(() => flights.delete(key)),
        waitUntil: performance.now() + timings.wait * 1000,
      };
      flights.set(key, flight);
    }
    return flight;
  }

  /** R7: one background refresh while the current token is still used; failures only back off. */
  function refreshAhead(loaded: LoadedSession, resource: string | undefined) {
    if (flights.has(`${loaded.id}\u0000${resource ?? ''}`)) return;
    if (backoff.remaining(loaded.id) > 0 || breaker.openFor() > 0) return;
    flightFor(loaded, resource, undefined).promise.catch((err: unknown) => {
      logger.debug({ err: describeError(err) }, 'bff: background refresh did not succeed');
    });
  }

  /** Waits for `flight` until its deadline; the refresh itself goes on (its result is stored). */
  function waitFor(flight: { promise: Promise<string>; waitUntil: number }): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new BffError('ERR_BFF_IDP_UNAVAILABLE', 'refresh did not complete within httpTimeout', {
              retryAfter: 1,
            }),
          ),
        Math.max(0, flight.waitUntil - performance.now()),
      );
    });
    return Promise.race([flight.promise, timeout]).finally(() => clearTimeout(timer));
  }

  async function getAccessToken(
    loaded: LoadedSession,
    options: { readonly forceRefresh?: boolean | undefined; readonly resource?: string | undefined } = {},
  ): Promise<string> {
    // The default resource is the configured one; asking for it explicitly is the same token.
    const resource =
      options.resource === undefined ||
      (config.resource.length === 1 && config.resource[0] === options.resource)
        ? undefined
        : options.resource;
    // Tokens refreshed while the store was failing replace the stored ones until they are written.
    if (unsaved.size > 0) loaded.tokens = unsaved.current(loaded.id, loaded.tokens);
    const record = open(loaded.id, loaded.tokens);
    const slot = record && slotOf(record, resource);
    if (slot && !options.forceRefresh) {
      if (!due(slot)) return slot.at;
      if (usable(slot)) {
        refreshAhead(loaded, resource);
        return slot.at;
      }
    }
    // Expired (or refused upstream): this request needs a new token, and waits for it — unless the
    // session is backing off after a failed refresh, which answers at once.
    const backingOff = backoff.remaining(loaded.id);
    if (backingOff > 0) {
      // The same answer as the failed refresh gave (503, or 502 for an unusable OP answer).
      throw new BffError(
        backoff.lastError(loaded.id) ?? 'ERR_BFF_IDP_UNAVAILABLE',
        'refresh backing off after a failure',
        { retryAfter: backingOff },
      );
    }
    const staleAt = options.forceRefresh ? slot?.at : undefined;
    const at = await waitFor(flightFor(loaded, resource, staleAt));
    const latest = cache.peek(loaded.id, { allowStale: true });
    if (latest) loaded.tokens = latest.sealed;
    return at;
  }

  return {
    seal,
    open,
    fromResponse,
    getAccessToken,
    senderKey,
    forget(sessionId) {
      cache.delete(sessionId);
      backoff.reset(sessionId);
      unsaved.forget(sessionId);
    },
    retains: (sessionId) =>
      cache.peek(sessionId, { allowStale: true }) !== undefined || backoff.lastError(sessionId) !== undefined,
    async drain(seconds) {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, seconds * 1000);
      });
      await Promise.race([
        Promise.allSettled([...flights.values()].map((flight) => flight.promise)).then(() => unsaved.flush()),
        deadline,
      ]);
      clearTimeout(timer);
    },
  };
}
