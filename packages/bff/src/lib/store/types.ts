// The session store contract. Small and Promise-based so memory and Redis (and anything else) can
// implement it and pass one conformance suite. Values are opaque strings: the BFF serializes and
// encrypts; a store never sees a plaintext token.

/** Who a session belongs to; the store indexes sessions by (iss, sub) and (iss, sid). */
export interface SessionIndex {
  readonly iss: string;
  readonly sub: string;
  readonly sid?: string | undefined;
}

/** A stored session: `data` is the serialized session, `tokens` the encrypted token record. */
export interface StoredSession {
  readonly data: string;
  readonly tokens?: string | undefined;
}

/**
 * Proof that a writer still holds a lock (fencing, SECURITY R8): the lock's key and the unique token
 * of the holder. A store refuses a fenced write once that lock expired or passed to someone else.
 */
export interface LockFence {
  readonly key: string;
  readonly token: string;
}

/** A held lock (its `key` and this holder's unique `token`); release it exactly once. */
export interface StoreLock extends LockFence {
  /** Frees the lock if this holder still holds it (never someone else's lock taken after expiry). */
  release(): Promise<void>;
  /**
   * Sets the lock's remaining lifetime to `ttlSeconds` if this holder still holds it; false when it was
   * lost (expired, or taken by another holder since). A refresh renews its lock while it runs.
   */
  extend(ttlSeconds: number): Promise<boolean>;
}

/** Match for index look-ups: `sid` (optionally narrowed by `sub`) or `sub`. */
export interface SessionMatch {
  readonly iss: string;
  readonly sub?: string | undefined;
  readonly sid?: string | undefined;
}

/** Outcome of {@link SessionStore.consumeRate}. */
export interface RateDecision {
  /** True when one call was taken from the bucket. */
  readonly allowed: boolean;
  /** When refused: seconds until the bucket holds a call again (for `Retry-After`); 0 when allowed. */
  readonly retryAfter: number;
}

/**
 * Where the BFF keeps sessions, replay marks, refresh locks and rate-limit buckets (login transactions live in a cookie).
 * Every method rejects with an Error when the backend is unavailable; the BFF answers 503 then.
 */
export interface SessionStore {
  /** `memory` stores only serve one process; `shared` stores serve every BFF instance. */
  readonly kind: 'memory' | 'shared';
  /** The session `id`, or undefined when unknown or expired. */
  get(id: string): Promise<StoredSession | undefined>;
  /**
   * Writes the session `data` (and its index) with a TTL. Leaves the stored `tokens` untouched unless
   * `tokens` is given, so a session write never rolls back a concurrent token refresh. With
   * `update: true` the write happens only if the session still exists (a request that loaded a session
   * must not resurrect it after a logout or back-channel logout ended it meanwhile); returns whether
   * it was written.
   */
  set(
    id: string,
    value: { data: string; index?: SessionIndex | undefined; tokens?: string | undefined; update?: boolean },
    ttlSeconds: number,
  ): Promise<boolean>;
  /**
   * Replaces the token record of an existing session atomically; false when the session is gone. With
   * a `fence`, the write happens only while that lock is still held by that token, checked in the same
   * atomic step (a refresh whose lock expired must not overwrite newer tokens, R8); false otherwise.
   */
  setTokens(id: string, tokens: string, fence?: LockFence): Promise<boolean>;
  /** Deletes the session and its index entries. */
  destroy(id: string): Promise<void>;
  /** Ids of the live sessions matching (iss, sid[, sub]) or (iss, sub). */
  find(match: SessionMatch): Promise<string[]>;
  /**
   * Records `key` for `ttlSeconds` unless already recorded; true the first time (replay cache). Keys
   * begin with their purpose: `login-state:` (the callback's state, L4), `once:backchannel:jti:`
   * (back-channel logout tokens, B2), `once:` (other marks taken through `bff.context.claimOnce`). A
   * store that bounds its marks bounds each purpose on its own, and never forgets a `once:` mark before
   * its TTL (that would accept a replay): it rejects a new one when full. It may forget the oldest
   * `login-state:` marks instead, which anyone can create: the OP's single-use codes stop a replayed
   * callback anyway, and refusing would let a flood of callbacks hold sign-ins off.
   */
  claimOnce(key: string, ttlSeconds: number): Promise<boolean>;
  /** Takes the lock `key` for `ttlSeconds` (renewable with `extend`); undefined when someone else holds it. */
  lock(key: string, ttlSeconds: number): Promise<StoreLock | undefined>;
  /**
   * Token bucket (SECURITY P7): takes one call from the bucket `key`, which holds at most `capacity`
   * calls and refills at `refillPerSecond`; a bucket never seen (or idle long enough) is full. Atomic
   * across every user of the store, so the limit holds across BFF instances on a shared store.
   * Optional for custom stores: without it the BFF keeps the buckets in process memory.
   */
  consumeRate?(key: string, capacity: number, refillPerSecond: number): Promise<RateDecision>;
  /** Stops timers; does not close connections the host passed in. */
  close?(): Promise<void>;
}
