// Refreshed tokens the session store could not take (SECURITY R3, R5). Once the OP has answered a
// refresh, the refresh token in the store is spent: the OP rotated it, and presenting it again is
// refused (invalid_grant, and RFC 9700 §4.14.2 reuse detection revokes the grant). If the store fails
// right then (Redis died between the token request and the write), losing the answer would sign the
// user out for good once the store is back. So the sealed record is kept here, used by this process
// instead of the stored one, and written behind as soon as the store takes it.
//
// Another instance that refreshes from the spent token before the write lands still loses the session;
// the write-behind polls quickly to keep that window short after an outage.
import { LRUCache } from 'lru-cache';
import { describeError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { SessionStore } from '../store/types.js';

/** Sessions whose refreshed tokens wait for the store, at most (oldest dropped first, with a warning). */
const MAX_UNSAVED = 10_000;
/** The write-behind polls the store this often at first (ms), growing to WRITE_PAUSE_MAX. */
const WRITE_PAUSE_MIN = 100;
const WRITE_PAUSE_MAX = 2_000;

interface Unsaved {
  /** The sealed record in the store when the refresh started: the one this entry supersedes. */
  readonly replaces: string | undefined;
  /** The refreshed, sealed record. */
  readonly sealed: string;
  pause: number;
  nextTry: number;
}

/** What the write-behind needs: the store and the refresh lock's key and TTL. */
export interface UnsavedDeps {
  readonly store: SessionStore;
  readonly logger: Logger;
  readonly lockKey: (sessionId: string) => string;
  readonly lockTtl: number;
}

export interface UnsavedTokens {
  /** Keeps `sealed` (refreshed from the stored `replaces`) until the store takes it. */
  keep(sessionId: string, replaces: string | undefined, sealed: string): void;
  /**
   * The record to use for a session whose store holds `stored`: the unsaved refresh that supersedes it,
   * else `stored`. An unsaved entry that no longer matches the store (someone wrote newer tokens) is dropped.
   */
  current(sessionId: string, stored: string | undefined): string | undefined;
  /** Forgets the session's entry (the session ended, or its newer tokens were written). */
  forget(sessionId: string): void;
  /** One write attempt for every entry now (graceful shutdown); resolves when they have settled. */
  flush(): Promise<void>;
  readonly size: number;
}

export function createUnsavedTokens(deps: UnsavedDeps): UnsavedTokens {
  const { store, logger, lockKey, lockTtl } = deps;
  const entries = new LRUCache<string, Unsaved>({
    max: MAX_UNSAVED,
    dispose: (_entry, _sessionId, reason) => {
      if (reason === 'evict') {
        logger.warn({}, 'bff: too many refreshed token records waiting for the store; dropped the oldest');
      }
    },
  });
  let timer: NodeJS.Timeout | undefined;
  let writing = false;

  /**
   * Writes one entry if the store still holds what it replaces: 'written', 'obsolete' (the session
   * ended, or newer tokens were written meanwhile) or 'pending' (try again later).
   */
  async function writeBack(sessionId: string, entry: Unsaved): Promise<'written' | 'obsolete' | 'pending'> {
    // The refresh lock keeps this write and a refresh of the same session from crossing.
    const lock = await store.lock(lockKey(sessionId), lockTtl);
    if (!lock) return 'pending';
    try {
      const stored = await store.get(sessionId);
      if (!stored || stored.tokens !== entry.replaces) return 'obsolete';
      return (await store.setTokens(sessionId, entry.sealed, lock)) ? 'written' : 'pending';
    } finally {
      lock.release().catch(() => {});
    }
  }

  async function writeDue(all: boolean): Promise<void> {
    if (writing) return;
    writing = true;
    try {
      const now = performance.now();
      for (const [sessionId, entry] of [...entries]) {
        if (!all && entry.nextTry > now) continue;
        let outcome: Awaited<ReturnType<typeof writeBack>> = 'pending';
        try {
          outcome = await writeBack(sessionId, entry);
        } catch (err) {
          logger.debug({ err: describeError(err) }, 'bff: refreshed tokens still waiting for the store');
        }
        if (entries.peek(sessionId) !== entry) continue; // replaced or forgotten meanwhile
        if (outcome !== 'pending') {
          entries.delete(sessionId);
          if (outcome === 'written')
            logger.info({}, 'bff: refreshed tokens written to the store after it recovered');
        } else {
          entry.pause = Math.min(WRITE_PAUSE_MAX, entry.pause * 2);
          entry.nextTry = performance.now() + entry.pause;
        }
      }
    } finally {
      writing = false;
      schedule();
    }
  }

  function schedule(): void {
    if (timer || entries.size === 0) return;
    let next = Number.POSITIVE_INFINITY;
    for (const entry of entries.values()) next = Math.min(next, entry.nextTry);
    timer = setTimeout(
      () => {
        timer = undefined;
        void writeDue(false);
      },
      Math.max(0, next - performance.now()),
    );
    timer.unref();
  }

  return {
    keep(sessionId, replaces, sealed) {
      entries.set(sessionId, {
        replaces,
        sealed,
        pause: WRITE_PAUSE_MIN,
        nextTry: performance.now() + WRITE_PAUSE_MIN,
      });
      logger.warn(
        {},
        'bff: refreshed tokens could not be stored; kept in process and written when the store is back',
      );
      schedule();
    },
    current(sessionId, stored) {
      const entry = entries.get(sessionId);
      if (!entry) return stored;
      if (entry.replaces === stored || entry.sealed === stored) {
        if (entry.sealed === stored) entries.delete(sessionId);
        return entry.sealed;
      }
      entries.delete(sessionId);
      return stored;
    },
    forget(sessionId) {
      entries.delete(sessionId);
    },
    async flush() {
      if (entries.size === 0) return;
      clearTimeout(timer);
      timer = undefined;
      await writeDue(true);
      if (entries.size > 0) {
        logger.warn({ sessions: entries.size }, 'bff: closing with refreshed tokens the store did not take');
      }
    },
    get size() {
      return entries.size;
    },
  };
}
