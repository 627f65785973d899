// Keeping an outage from multiplying IdP traffic (SECURITY R7): a per-session back-off after a failed
// refresh (growing, jittered, capped) and one circuit breaker for the OP (after several failures in a
// row, refreshes are answered at once for a few seconds; then one probe at a time finds out whether it
// is back). Both are in-process; across instances the refresh lock is kept for the back-off instead of
// being released (see flight.ts), so another instance does not try again early either.
import { LRUCache } from 'lru-cache';
import { BffError, type BffErrorCode } from '../errors.js';

/** First back-off after a failed refresh, and its cap (seconds). Doubled per failure, jittered down to half. */
export const BACKOFF_BASE = 1;
export const BACKOFF_CAP = 10;
/** Failed token requests in a row (any session) that open the circuit, and how long it stays open (seconds). */
export const BREAKER_THRESHOLD = 5;
// Short: once the OP is back, a session learns it within about a second (plus its own back-off, which
// an observed recovery lifts, see flight.ts); the breaker still lets at most one request through per
// window while the OP stays down.
export const BREAKER_OPEN = 1;
/**
 * How long (ms) other refreshes wait for a probe's outcome before they are answered 503 themselves: a
 * probe to a healthy OP answers well within it, while one to a hung OP would otherwise hold every
 * waiting request for a whole `httpTimeout`.
 */
export const PROBE_WAIT_MS = 1000;
/** Sessions remembered at most (the one that failed longest ago is forgotten first). */
const MAX_ENTRIES = 10_000;

/** Per-session back-off after failed refreshes. */
export interface SessionBackoff {
  /** Seconds until the session may try a refresh again; 0 when it may now. */
  remaining(sessionId: string): number;
  /** While backing off: the error the session's last refresh ended with, to answer with again. */
  lastError(sessionId: string): BffErrorCode | undefined;
  /**
   * Records a failed refresh of the session (ended with `code`); returns its back-off in seconds, at
   * least `atLeast` (the OP's `Retry-After`).
   */
  fail(sessionId: string, code: BffErrorCode, atLeast?: number): number;
  /** Forgets the session's failures (after a successful refresh, or when the session ends). */
  reset(sessionId: string): void;
  /** Forgets every session's failures: the OP answered again, so nobody needs to wait any longer. */
  resetAll(): void;
}

/** Creates the per-session back-off; `clock` in epoch ms, `random` in [0, 1). */
export function createSessionBackoff(clock: () => number, random = Math.random): SessionBackoff {
  // Reads peek, so only a failure makes a session recent again.
  const entries = new LRUCache<string, { failures: number; until: number; code: BffErrorCode }>({
    max: MAX_ENTRIES,
  });
  return {
    remaining(sessionId) {
      const entry = entries.peek(sessionId);
      if (!entry) return 0;
      return Math.max(0, (entry.until - clock()) / 1000);
    },
    lastError(sessionId) {
      return entries.peek(sessionId)?.code;
    },
    fail(sessionId, code, atLeast = 0) {
      const failures = (entries.peek(sessionId)?.failures ?? 0) + 1;
      const full = Math.min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (failures - 1));
      // "Equal jitter": half fixed, half random, so sessions that failed together spread out but the
      // steps still grow.
      const seconds = Math.max(atLeast, full / 2 + (full / 2) * random());
      entries.set(sessionId, { failures, until: clock() + seconds * 1000, code });
      return seconds;
    },
    reset(sessionId) {
      entries.delete(sessionId);
    },
    resetAll() {
      entries.clear();
    },
  };
}

/** Permission for one token request; report its outcome exactly once with `done`. */
export interface BreakerPermit {
  /** The request has taken longer than a caller may wait: counts as a failure now (once). */
  slow(): void;
  /** `true` when the OP answered usefully (tokens, or a definite `invalid_grant`), `false` otherwise. */
  done(ok: boolean): void;
}

/** The OP's circuit breaker. */
export interface CircuitBreaker {
  /**
   * Waits until a token request may go out: at once while closed; while open it throws BffError
   * `ERR_BFF_IDP_UNAVAILABLE` with `Retry-After`; once the open period is over, one caller becomes the
   * probe and the others wait for its outcome, at most PROBE_WAIT_MS (then 503 with `Retry-After: 1`).
   */
  admit(): Promise<BreakerPermit>;
  /** Seconds the circuit stays open; 0 when closed or probing. */
  openFor(): number;
}

/** Creates the breaker; `clock` in epoch ms. */
export function createCircuitBreaker(clock: () => number): CircuitBreaker {
  let failures = 0;
  /** 0 = closed; otherwise the circuit opened and stays open until this time, then half-opens. */
  let openUntil = 0;
  let probe: { settled: Promise<void>; settle: () => void } | undefined;

  const open = () => {
    openUntil = clock() + BREAKER_OPEN * 1000;
  };
  const fail = (isProbe: boolean) => {
    failures++;
    if (isProbe || (openUntil === 0 && failures >= BREAKER_THRESHOLD)) open();
  };

  const permit = (isProbe: boolean): BreakerPermit => {
    let counted = false;
    let finished = false;
    const endProbe = () => {
      if (!isProbe || !probe) return;
      const ended = probe;
      probe = undefined;
      ended.settle();
    };
    return {
      slow() {
        if (counted || finished) return;
        counted = true;
        fail(isProbe);
        endProbe();
      },
      done(ok) {
        if (finished) return;
        finished = true;
        if (ok) {
          failures = 0;
          openUntil = 0;
        } else if (!counted) {
          counted = true;
          fail(isProbe);
        }
        endProbe();
      },
    };
  };

  return {
    async admit() {
      for (;;) {
        const now = clock();
        if (openUntil === 0) return permit(false);
        if (openUntil > now) {
          throw new BffError('ERR_BFF_IDP_UNAVAILABLE', 'identity provider circuit open', {
            retryAfter: (openUntil - now) / 1000,
          });
        }
        if (!probe) {
          let settle = () => {};
          const settled = new Promise<void>((resolve) => {
            settle = resolve;
          });
          probe = { settled, settle };
          return permit(true);
        }
        let timer: NodeJS.Timeout | undefined;
        const gaveUp = await Promise.race([
          probe.settled.then(() => false),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(true), PROBE_WAIT_MS);
          }),
        ]);
        clearTimeout(timer);
        if (gaveUp) {
          throw new BffError('ERR_BFF_IDP_UNAVAILABLE', 'identity provider probe under way', {
            retryAfter: 1,
          });
        }
      }
    },
    openFor() {
      return openUntil === 0 ? 0 : Math.max(0, (openUntil - clock()) / 1000);
    },
  };
}
