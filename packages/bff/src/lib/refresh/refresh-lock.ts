// The session's refresh lock in the store (SECURITY R2, R8): taken by polling with a growing pause until
// `lockWait` is over, and renewed every third of its TTL while the refresh runs.
import { BffError, describeError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { SessionStore, StoreLock } from '../store/types.js';
import type { RefreshTimings } from './timings.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function createRefreshLocks(deps: {
  readonly store: SessionStore;
  readonly logger: Logger;
  readonly timings: RefreshTimings;
}) {
  const { store, logger, timings } = deps;

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

  return { acquire, heartbeat };
}
