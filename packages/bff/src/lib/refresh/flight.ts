// One refresh of one session, as one instance of the cluster does it (SECURITY R2, R3, R5, R5a, R6, R8):
// take the session's refresh lock in the store and keep renewing it while the refresh runs, re-read the
// session (another instance may have refreshed meanwhile), send the refresh token with bounded retries,
// check the refreshed ID token, and write the new tokens fenced by the lock, so a holder whose lock
// lapsed can never overwrite newer tokens. A failure keeps the lock for the session's back-off, which
// makes the back-off hold on every instance. Tokens the OP issued but the store could not take are kept
// in process and written behind (unsaved.ts): the refresh token they replace is already spent.
import * as client from 'openid-client';
import type { ResolvedBffConfig } from '../config.js';
import { requireDpopBound } from '../dpop/authorization-server.js';
import { BffError, describeError } from '../errors.js';
import { checkRefreshedIdToken } from '../id-token.js';
import type { Logger } from '../logger.js';
import type { LoadedSession } from '../session/data.js';
import type { SessionStore, StoreLock } from '../store/types.js';
import type { TokenRecord } from '../token-record.js';
import { BREAKER_OPEN, type CircuitBreaker, type SessionBackoff } from './backoff.js';
import { classifyTokenFailure, type TokenFailure } from './failure.js';
import type { UnsavedTokens } from './unsaved.js';

/** Token requests per refresh at most (R5). */
export const MAX_ATTEMPTS = 3;
/** Pauses before the 2nd and 3rd attempt (ms); an OP's Retry-After above INLINE_RETRY_AFTER ends the refresh instead. */
const RETRY_DELAYS = [150, 400];
const INLINE_RETRY_AFTER = 1;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** How long things may take, all derived from `httpTimeout` (seconds). */
export interface RefreshTimings {
  /** A request holding an expired token waits at most this long for a refresh. */
  readonly wait: number;
  /**
   * One refresh request may take this long. Longer than `wait` on purpose: an OP that stalls and then
   * processes the request has rotated the refresh token, so giving up early and sending the old one again
   * would revoke the grant (RFC 9700 §4.14.2). The refresh goes on after its waiters have been answered.
   */
  readonly attempt: number;
  /** TTL of the refresh lock; renewed every third of it while the refresh runs (R8). */
  readonly lockTtl: number;
  /** How long a refresh waits for another holder's lock before giving up. */
  readonly lockWait: number;
}

/** The timings for an `httpTimeout` in seconds. */
export function refreshTimings(httpTimeout: number): RefreshTimings {
  const lockTtl = Math.min(10, Math.max(1, httpTimeout));
  return Object.freeze({
    wait: httpTimeout,
    attempt: 3 * httpTimeout,
    lockTtl,
    lockWait: 3 * httpTimeout + lockTtl,
  });
}

/** What one refresh needs from the token service and the BFF. */
export interface FlightDeps {
  readonly config: ResolvedBffConfig;
  readonly store: SessionStore;
  readonly logger: Logger;
  readonly timings: RefreshTimings;
  readonly backoff: SessionBackoff;
  readonly breaker: CircuitBreaker;
  readonly unsaved: UnsavedTokens;
  getOidcConfiguration(): Promise<client.Configuration>;
  endSession(sessionId: string): Promise<void>;
  open(sessionId: string, sealed: string | undefined): TokenRecord | undefined;
  seal(sessionId: string, record: TokenRecord): string;
  fromResponse(response: client.TokenEndpointResponse, previous: TokenRecord, resource?: string): TokenRecord;
  /** The record's access token for `resource` if it is not yet due for refresh. */
  fresh(record: TokenRecord, resource: string | undefined): string | undefined;
  /** openid-client options with the session's DPoP proof, when its tokens are DPoP-bound (D1). */
  dpopOptions(sessionId: string, record: TokenRecord): Promise<client.DPoPOptions | undefined>;
}

/** Why a refresh did not produce tokens (after retries): kept separate from "session over". */
class RefreshFailed extends Error {
  constructor(
    readonly failure: TokenFailure,
    options: { cause?: unknown },
  ) {
    super('refresh failed', options);
  }
}

/** Returns `refresh(loaded, resource, staleAt)`: one cluster-wide refresh of a session. */
export function createFlight(deps: FlightDeps) {
  const { config, store, logger, timings, backoff, breaker, unsaved } = deps;
  /**
   * Refresh locks this instance keeps for a session's back-off. When a refresh succeeds again the OP is
   * back: the back-offs are lifted and these locks released, so every session can refresh at once
   * instead of waiting out steps of up to BACKOFF_CAP seconds after the outage ended.
   */
  const kept = new Map<string, StoreLock>();
  function liftBackoffs(): void {
    backoff.resetAll();
    if (kept.size === 0) return;
    for (const lock of kept.values()) lock.release().catch(() => {});
    kept.clear();
  }

  /** Polls for the session's refresh lock (growing pause), until `lockWait` is over. */
  async function acquire(key: string): Promise<StoreLock> {
    const deadline = performance.now() + timings.lockWait * 1000;
    let pause = 25;
    for (;;) {
      const lock = await store.lock(key, timings.lockTtl);
      if (lock) return lock;
      if (performance.now() + pause > deadline) {
        throw new BffError('ERR_BFF_IDP_UNAVAILABLE', 'refresh lock busy', { retryAfter: 1 });
      }
      await sleep(pause * (0.5 + Math.random() / 2));
      pause = Math.min(250, pause * 1.5);
    }
  }

  /** Renews the lock every third of its TTL; the returned function stops it. */
  function heartbeat(lock: StoreLock): () => void {
    const timer = setInterval(
      () => {
        lock.extend(timings.lockTtl).then(
          (held) => {
            if (!held) logger.warn({}, 'bff: refresh lock lost while refreshing; the write will be fenced');
          },
          (err: unknown) => logger.warn({ err: describeError(err) }, 'bff: refresh lock renewal failed'),
        );
      },
      (timings.lockTtl * 1000) / 3,
    );
    timer.unref();
    return () => clearInterval(timer);
  }

  /**
   * One refresh-token request. openid-client takes its timeout from the Configuration; the refresh's
   * longer one (see RefreshTimings.attempt) is set for exactly this call: the library turns it into an
   * AbortSignal synchronously, before its first await, so no other request can observe the change.
   * A DPoP-bound session's request carries a proof and must come back `token_type: DPoP` (D1).
   */
  function tokenRequest(
    configuration: client.Configuration,
    rt: string,
    params: Record<string, string>,
    dpop: client.DPoPOptions | undefined,
  ) {
    const saved = configuration.timeout;
    configuration.timeout = timings.attempt;
    try {
      const request = client.refreshTokenGrant(configuration, rt, params, dpop);
      if (!dpop) return request;
      return request.then((response) => {
        requireDpopBound(response);
        return response;
      });
    } finally {
      configuration.timeout = saved;
    }
  }

  /** Up to MAX_ATTEMPTS requests; retries only what cannot have been processed by the OP (R5). */
  async function requestTokens(
    rt: string,
    resource: string | undefined,
    dpop: client.DPoPOptions | undefined,
  ) {
    const configuration = await deps.getOidcConfiguration();
    const params: Record<string, string> = {};
    if (resource !== undefined) params.resource = resource;
    else if (config.resource.length === 1 && config.resource[0]) params.resource = config.resource[0];

    for (let attempt = 1; ; attempt++) {
      let permit: Awaited<ReturnType<CircuitBreaker['admit']>>;
      try {
        permit = await breaker.admit();
      } catch (err) {
        const retryAfter = err instanceof BffError ? err.retryAfter : undefined;
        throw new RefreshFailed(
          { kind: 'transient', retryable: false, retryAfter, cause: 'circuit_open' },
          {},
        );
      }
      // A request slower than callers may wait counts against the OP now, not only when it ends.
      const slow = setTimeout(() => permit.slow(), timings.wait * 1000);
      slow.unref();
      try {
        const response = await tokenRequest(configuration, rt, params, dpop);
        permit.done(true);
        return response;
      } catch (err) {
        const failure = classifyTokenFailure(err);
        const answered = failure.kind === 'invalid_grant' || failure.kind === 'validation';
        permit.done(answered);
        logger.warn(
          { err: describeError(err), kind: failure.kind, cause: failure.cause, attempt },
          'bff: token refresh failed',
        );
        const again =
          failure.kind === 'transient' &&
          failure.retryable &&
          attempt < MAX_ATTEMPTS &&
          (failure.retryAfter ?? 0) <= INLINE_RETRY_AFTER &&
          breaker.openFor() === 0;
        if (!again) throw new RefreshFailed(failure, { cause: err });
        const pause = RETRY_DELAYS[attempt - 1] ?? 400;
        await sleep(Math.max(pause * (0.5 + Math.random() / 2), (failure.retryAfter ?? 0) * 1000));
      } finally {
        clearTimeout(slow);
      }
    }
  }

  /**
   * Writes the new tokens fenced by `lock`. If the fence refuses (the lock lapsed, e.g. the store was
   * unreachable for a heartbeat), the lock is taken again and the write goes through only if the stored
   * tokens are still the ones this refresh started from: then nobody else refreshed, and the rotated
   * refresh token must not be lost. Otherwise the newer tokens stay and are used. A store that fails
   * meanwhile gets the tokens later (unsaved.ts); the caller uses them at once either way.
   */
  async function write(
    lock: StoreLock,
    sessionId: string,
    sealed: string,
    startedFrom: string | undefined,
    resource: string | undefined,
  ): Promise<string | undefined> {
    try {
      const theirs = await writeFenced(lock, sessionId, sealed, startedFrom, resource);
      if (theirs === undefined) unsaved.forget(sessionId);
      return theirs;
    } catch (err) {
      if (!(err instanceof BffError) || err.code !== 'ERR_BFF_STORE_UNAVAILABLE') throw err;
      // The OP has answered, so the stored refresh token is spent: keep the answer and write it later.
      unsaved.keep(sessionId, startedFrom, sealed);
      return undefined;
    }
  }

  async function writeFenced(
    lock: StoreLock,
    sessionId: string,
    sealed: string,
    startedFrom: string | undefined,
    resource: string | undefined,
  ): Promise<string | undefined> {
    if (await store.setTokens(sessionId, sealed, lock)) return undefined;
    const stored = await store.get(sessionId);
    if (!stored) throw new BffError('ERR_BFF_SESSION_ENDED', 'session ended during refresh');
    const again = await store.lock(lock.key, timings.lockTtl);
    try {
      if (again && stored.tokens === startedFrom && (await store.setTokens(sessionId, sealed, again))) {
        return undefined;
      }
    } finally {
      again?.release().catch(() => {});
    }
    logger.warn({}, 'bff: refresh lock lost; newer tokens from another holder are kept');
    const record = deps.open(sessionId, stored.tokens);
    const current = record && deps.fresh(record, resource);
    if (current) return current;
    throw new BffError('ERR_BFF_IDP_UNAVAILABLE', 'refresh lock lost', { retryAfter: 1 });
  }

  /**
   * Refreshes the session's token for `resource` (undefined = the default one). `staleAt` is a token the
   * caller knows to be bad (forced refresh): a re-read that finds it is not an answer.
   * @throws BffError ERR_BFF_SESSION_ENDED (401, session destroyed), ERR_BFF_IDP_UNAVAILABLE (503, with
   *   Retry-After), ERR_BFF_IDP_RESPONSE (502), ERR_BFF_STORE_UNAVAILABLE (503).
   */
  return async function refresh(
    loaded: LoadedSession,
    resource: string | undefined,
    staleAt: string | undefined,
  ): Promise<string> {
    const sessionId = loaded.id;
    const open = breaker.openFor();
    if (open > 0)
      throw new BffError('ERR_BFF_IDP_UNAVAILABLE', 'identity provider circuit open', { retryAfter: open });
    const lock = await acquire(`refresh:${sessionId}`);
    let stopHeartbeat = heartbeat(lock);
    let keepLock = false;
    try {
      // Another request or instance may have refreshed while we waited: re-read and re-check.
      const stored = await store.get(sessionId);
      if (!stored) throw new BffError('ERR_BFF_SESSION_ENDED', 'session ended');
      // A refresh the store did not take yet supersedes the stored record (whose refresh token is spent).
      const record = deps.open(sessionId, unsaved.current(sessionId, stored.tokens));
      if (!record) {
        await deps.endSession(sessionId);
        throw new BffError('ERR_BFF_SESSION_ENDED', 'token record unreadable');
      }
      const current = deps.fresh(record, resource);
      if (current && current !== staleAt) return current;
      if (!record.rt) {
        await deps.endSession(sessionId);
        throw new BffError('ERR_BFF_SESSION_ENDED', 'access token expired and there is no refresh token');
      }

      let response: Awaited<ReturnType<typeof client.refreshTokenGrant>>;
      try {
        response = await requestTokens(record.rt, resource, await deps.dpopOptions(sessionId, record));
      } catch (err) {
        if (!(err instanceof RefreshFailed)) throw err;
        const { failure } = err;
        if (failure.kind === 'invalid_grant' || failure.kind === 'validation') {
          // invalid_grant (R4) or a refreshed ID token that fails validation (R6): the session is over.
          await deps.endSession(sessionId);
          throw new BffError('ERR_BFF_SESSION_ENDED', 'refresh rejected', { cause: err.cause });
        }
        // Refused by the open circuit: no request went out, so this session failed nothing of its own.
        if (failure.cause === 'circuit_open') {
          throw new BffError('ERR_BFF_IDP_UNAVAILABLE', 'identity provider circuit open', {
            retryAfter: failure.retryAfter ?? BREAKER_OPEN,
          });
        }
        // Keep the lock for the back-off, so no instance tries this session again before it is over.
        const code = failure.kind === 'response' ? 'ERR_BFF_IDP_RESPONSE' : 'ERR_BFF_IDP_UNAVAILABLE';
        const seconds = backoff.fail(sessionId, code, failure.retryAfter);
        stopHeartbeat();
        stopHeartbeat = () => {};
        keepLock = await lock.extend(seconds).catch(() => false);
        if (keepLock) {
          kept
            .get(sessionId)
            ?.release()
            .catch(() => {});
          kept.set(sessionId, lock);
        }
        throw new BffError(
          code,
          code === 'ERR_BFF_IDP_RESPONSE' ? 'unusable token response' : 'token endpoint unavailable',
          { cause: err.cause, retryAfter: seconds },
        );
      }

      // R6: same iss, sub, aud, azp and auth_time as the login, signed with an accepted key (L17).
      const configuration = await deps.getOidcConfiguration();
      if (!(await checkRefreshedIdToken(configuration, response, loaded.data))) {
        logger.warn({}, 'bff: refreshed ID token does not match the session; ending it');
        await deps.endSession(sessionId);
        throw new BffError('ERR_BFF_SESSION_ENDED', 'refreshed ID token does not match the session');
      }

      const next = deps.fromResponse(response, record, resource);
      const sealed = deps.seal(sessionId, next);
      const theirs = await write(lock, sessionId, sealed, stored.tokens, resource);
      if (theirs) return theirs;
      deps.open(sessionId, sealed); // warm the decrypted-record cache
      liftBackoffs();
      return resource === undefined ? next.at : (next.res?.[resource]?.at ?? next.at);
    } finally {
      stopHeartbeat();
      if (!keepLock) {
        lock
          .release()
          .catch((err: unknown) => logger.warn({ err: describeError(err) }, 'bff: lock release failed'));
      }
    }
  };
}
