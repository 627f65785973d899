// The keep-alive client of the proxy: one undici Pool per upstream origin, shared by every route to that
// origin, called directly (no proxy library in between). Chosen by measurement against node:http with a
// keep-alive Agent (test/bench/proxy.ts runs the same bare proxy on both in one run): undici needed
// 1.1–1.5× less CPU per forwarded call (wrk, 32 connections: 1.4–1.5× the calls per second), and it
// parses each response once, into the header object the proxy filters anyway.
// First, for its side effect: Node's fetch gets its own dispatcher before undici could install one.
import './global-fetch-guard.js';
import { Client, type Dispatcher, Pool } from 'undici';

/**
 * Idle keep-alive sockets are closed after this long unless the upstream announces its own
 * `Keep-Alive: timeout=N` (then N minus {@link KEEP_ALIVE_THRESHOLD_MS}). Below the common server
 * defaults (Node 5 s, Apache 5 s, gunicorn 2 s is the shortest usual one): reusing a socket the
 * upstream is closing at that moment is the race that ends in a reset.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 1_500;
/** Margin taken off an upstream's announced keep-alive timeout. */
export const KEEP_ALIVE_THRESHOLD_MS = 2_000;
/** Largest upstream response header section accepted (bytes); more is a 502. */
export const MAX_RESPONSE_HEADER_BYTES = 16_384;
/** Milliseconds to establish a TCP (and TLS) connection to an upstream. */
export const CONNECT_TIMEOUT_MS = 10_000;

const CLIENT_OPTIONS = Object.freeze({
  keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
  keepAliveTimeoutThreshold: KEEP_ALIVE_THRESHOLD_MS,
  keepAliveMaxTimeout: 30_000,
  maxHeaderSize: MAX_RESPONSE_HEADER_BYTES,
  connect: { timeout: CONNECT_TIMEOUT_MS },
  // Each dispatch carries its route's own headersTimeout and bodyTimeout (call.ts); none here.
  bodyTimeout: 0,
});

/** The pools of one proxy engine. */
export interface Upstreams {
  /** Sends a request on a pooled keep-alive connection to `origin`. */
  dispatch(origin: string, options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): void;
  /**
   * Sends a request on a connection opened for it alone and closed afterwards: the one retry after a
   * reused keep-alive connection turned out closed by the upstream.
   */
  dispatchFresh(
    origin: string,
    options: Dispatcher.DispatchOptions,
    handler: Dispatcher.DispatchHandler,
  ): void;
  /** Closes every pool (idle sockets at once; running calls are aborted). */
  close(): Promise<void>;
}

/** Creates the pools for `origins` (built once at start-up, so no per-request look-up can miss). */
export function createUpstreams(origins: Iterable<string>): Upstreams {
  const pools = new Map<string, Pool>();
  for (const origin of origins) {
    // No connection limit, like Node's default Agent: a call never queues behind a slow one.
    if (!pools.has(origin)) pools.set(origin, new Pool(origin, { ...CLIENT_OPTIONS, connections: null }));
  }
  const fresh = new Set<Client>();
  return {
    dispatch(origin, options, handler) {
      (pools.get(origin) as Pool).dispatch(options, handler);
    },
    dispatchFresh(origin, options, handler) {
      const client = new Client(origin, { ...CLIENT_OPTIONS, pipelining: 1 });
      fresh.add(client);
      const done = () => {
        fresh.delete(client);
        void client.close().catch(() => {});
      };
      client.dispatch(
        { ...options, reset: true },
        {
          onRequestStart: (controller, context) => handler.onRequestStart?.(controller, context),
          onResponseStart: (controller, status, headers, message) =>
            handler.onResponseStart?.(controller, status, headers, message),
          onResponseData: (controller, chunk) => handler.onResponseData?.(controller, chunk),
          onResponseEnd: (controller, trailers) => {
            done();
            handler.onResponseEnd?.(controller, trailers);
          },
          onResponseError: (controller, err) => {
            done();
            handler.onResponseError?.(controller, err);
          },
        },
      );
    },
    async close() {
      const all = [...pools.values(), ...fresh];
      await Promise.all(all.map((dispatcher) => dispatcher.destroy().catch(() => {})));
    },
  };
}
