// One refresh of one session, as one instance of the cluster does it (SECURITY R2, R3, R5, R5a, R6, R8):
// take the session's refresh lock in the store and keep renewing it while the refresh runs, re-read the
// session (another instance may have refreshed meanwhile), send the refresh token with bounded retries,
// check the refreshed ID token, and write the new tokens fenced by the lock, so a holder whose lock
// lapsed can never overwrite newer tokens. A failure keeps the lock for the session's back-off, which
// makes the back-off hold on every instance. Tokens the OP issued but the store could not take are kept
// in process and written behind (unsaved.ts): the refresh token they replace is already spent.
import type * as client from 'openid-client';
import type { ResolvedBffConfig } from '../config.js';
import { BffError, describeError } from '../errors.js';
import { checkRefreshedIdToken } from '../id-token.js';
import type { Logger } from '../logger.js';
import type { LoadedSession } from '../session/data.js';
import type { SessionStore, StoreLock } from '../store/types.js';
import type { TokenRecord } from '../token-record.js';
import { BREAKER_OPEN, type CircuitBreaker, type SessionBackoff } from './backoff.js';
import { createRefreshLocks } from './refresh-lock.js';
import type { RefreshTimings } from './timings.js';
import { createTokenRequester, RefreshFailed, type RefreshResponse } from './token-request.js';
import type { UnsavedTokens } from './unsaved.js';

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

/** Returns `refresh(loaded, resource, staleAt)`: one cluster-wide refresh of a session. */
export function createFlight(deps: FlightDeps) {
  const { store, logger, timings, backoff, breaker, unsaved } = deps;
  const { acquire, heartbeat } = createRefreshLocks(deps);
  const requestTokens = createTokenRequester(deps);
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

  /**
   * Writes the new tokens fenced by `lock`. If the fence refuses (the lock lapsed, e.g. the store was
   * unreachable for a heartbeat), the lock is taken again and the write goes through only if the stored
   * tokens are still the ones this refresh started from: then nobody else refreshed, and the rotated
   * refresh token must not be lost (if another holder has the lock by then, they are written behind, as
   * below). Otherwise the newer tokens stay and are used. A store that fails meanwhile gets the tokens
   * later (unsaved.ts); the caller uses them at once either way. Undefined: the caller's tokens are in use.
   */
  async function write(
    lock: StoreLock,
    sessionId: string,
    sealed: string,
    startedFrom: string | undefined,
    resource: string | undefined,
  ): Promise<string | undefined> {
    try {
      return await writeFenced(lock, sessionId, sealed, startedFrom, resource);
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
    if (await store.setTokens(sessionId, sealed, lock)) {
      unsaved.forget(sessionId);
      return undefined;
    }
    // Lock first, then read: a read taken before the lock could miss a write another holder makes in
    // between, and the write below would then overwrite its newer tokens.
    const again = await store.lock(lock.key, timings.lockTtl);
    try {
      const stored = await store.get(sessionId);
      if (!stored) throw new BffError('ERR_BFF_SESSION_ENDED', 'session ended during refresh');
      if (stored.tokens === startedFrom) {
        if (again && (await store.setTokens(sessionId, sealed, again))) unsaved.forget(sessionId);
        // Nobody wrote newer tokens, but another holder has the lock now (e.g. kept for its back-off):
        // this answer is the only one with an unspent refresh token, so use it and write it behind.
        else unsaved.keep(sessionId, startedFrom, sealed);
        return undefined;
      }
      logger.warn({}, 'bff: refresh lock lost; newer tokens from another holder are kept');
      const record = deps.open(sessionId, stored.tokens);
      const current = record && deps.fresh(record, resource);
      if (current) return current;
      throw new BffError('ERR_BFF_IDP_UNAVAILABLE', 'refresh lock lost', { retryAfter: 1 });
    } finally {
      again?.release().catch(() => {});
    }
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

      let response: RefreshResponse;
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
      let idTokenMatches: boolean;
      try {
        idTokenMatches = await checkRefreshedIdToken(configuration, response, loaded.data);
      } catch (err) {
        if (!(err instanceof BffError) || err.code !== 'ERR_BFF_IDP_UNAVAILABLE') throw err;
        // The OP's signing keys could not be fetched to check the ID token, so nothing of this answer
        // may be used yet. But the OP has rotated the refresh token: keep the new one (beside the access
        // token the session already has), or the next refresh would present a spent token and end it.
        if (response.refresh_token !== undefined && response.refresh_token !== record.rt) {
          const kept = deps.seal(sessionId, { ...record, rt: response.refresh_token });
          await write(lock, sessionId, kept, stored.tokens, resource);
        }
        const seconds = backoff.fail(sessionId, err.code, err.retryAfter);
        throw new BffError(err.code, 'the OP signing keys are unavailable', {
          cause: err,
          retryAfter: seconds,
        });
      }
      if (!idTokenMatches) {
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
