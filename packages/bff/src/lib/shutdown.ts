// Graceful shutdown (bff.close()): once closing, new requests on the BFF's paths are refused with 503
// `ERR_BFF_SHUTTING_DOWN` (Retry-After, Connection: close); the requests already taken are counted so
// close() can wait for them.
import type { ServerResponse } from 'node:http';
import { BffError } from './errors.js';
import { sendError } from './http/problem.js';

/** The answer to new work while closing. */
export const SHUTTING_DOWN = new BffError('ERR_BFF_SHUTTING_DOWN', 'shutting down', { retryAfter: 1 });

/** The shutdown state of one BFF. */
export interface ShutdownGate {
  readonly closing: boolean;
  /** From now on, refuse new work. */
  close(): void;
  /** Answers 503 ERR_BFF_SHUTTING_DOWN with `Connection: close`. */
  refuse(res: ServerResponse): void;
  /** Counts `res` as under way until it closes. */
  track(res: ServerResponse): void;
  readonly inFlight: number;
  /** Resolves when no tracked request is under way. */
  idle(): Promise<void>;
}

/** A new gate, open. */
export function createShutdownGate(): ShutdownGate {
  let closing = false;
  let inFlight = 0;
  let onIdle: (() => void) | undefined;
  // One listener for every tracked response ('close' fires once per response): nothing to allocate per
  // request, unlike a closure (and `once`'s wrapper) each.
  const untrack = () => {
    inFlight--;
    if (inFlight === 0) onIdle?.();
  };
  return {
    get closing() {
      return closing;
    },
    get inFlight() {
      return inFlight;
    },
    close() {
      closing = true;
    },
    refuse(res) {
      res.setHeader('Connection', 'close');
      sendError(res, SHUTTING_DOWN);
    },
    track(res) {
      inFlight++;
      res.on('close', untrack);
    },
    idle() {
      if (inFlight === 0) return Promise.resolve();
      return new Promise<void>((resolve) => {
        onIdle = resolve;
      });
    },
  };
}
