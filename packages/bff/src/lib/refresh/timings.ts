// How long the parts of a refresh may take, all derived from the one `httpTimeout` option.

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
