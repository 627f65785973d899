import type { TokenManagerErrorCode } from './errors.js';
import type { TokenManagerLogger, TokenSource } from './types.js';

/**
 * Observability events and their payloads. Payloads carry metadata only: never a token, a secret
 * or a client assertion. `client` is the configured client name.
 */
export interface TokenManagerEvents {
  /** A call was answered from a cache without a token request. */
  'token.cache-hit': {
    client: string;
    source: Exclude<TokenSource, 'idp'>;
    tokenType: 'Bearer' | 'DPoP';
    expiresIn: number;
  };
  /** A token request is about to be sent (`attempt` starts at 1). */
  'token.requested': { client: string; attempt: number; scope: string | undefined; resource: string[] };
  /** A new token was obtained from the token endpoint. */
  'token.renewed': {
    client: string;
    tokenType: 'Bearer' | 'DPoP';
    expiresIn: number;
    scope: string | undefined;
    resource: string[];
    attempts: number;
  };
  /**
   * A token request failed (`willRetry` says whether another attempt follows), or a call was
   * refused inside a remembered-failure window (`suppressed: true`, no request made).
   */
  'token.failed': {
    client: string;
    code: TokenManagerErrorCode;
    oauthError: string | undefined;
    upstreamStatus: number | undefined;
    attempt: number;
    retryable: boolean;
    willRetry: boolean;
    suppressed: boolean;
  };
  /** Renewal failed, so a cached token that has not expired yet was served (`code`: why it failed). */
  'token.stale-served': { client: string; expiresIn: number; code: TokenManagerErrorCode };
  /** A cached token was dropped (forced renewal, or the API rejected it). */
  'token.evicted': { client: string; reason: 'forced' | 'rejected' };
  /** The shared cache (Redis) failed or is not ready; the call went on without it. */
  'cache.degraded': { operation: string; reason: string };
}

/** Name of an observability event. */
export type TokenManagerEventName = keyof TokenManagerEvents;

/** A listener for one event. */
export type TokenManagerListener<E extends TokenManagerEventName> = (payload: TokenManagerEvents[E]) => void;

/** A tiny typed emitter: listeners that throw are logged and never break a token request. */
export class Emitter {
  readonly #listeners = new Map<TokenManagerEventName, Set<(payload: never) => void>>();
  readonly #logger: TokenManagerLogger;

  constructor(logger: TokenManagerLogger) {
    this.#logger = logger;
  }

  on<E extends TokenManagerEventName>(event: E, listener: TokenManagerListener<E>): () => void {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }

  /** Whether anyone listens (lets hot paths skip building a payload nobody reads). */
  has(event: TokenManagerEventName): boolean {
    return (this.#listeners.get(event)?.size ?? 0) > 0;
  }

  emit<E extends TokenManagerEventName>(event: E, payload: TokenManagerEvents[E]): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const listener of set) {
      try {
        (listener as TokenManagerListener<E>)(payload);
      } catch (error) {
        this.#logger.warn(
          { event, err: error instanceof Error ? error.message : String(error) },
          'listener threw',
        );
      }
    }
  }
}

/** The default logger: the library stays silent unless given one. */
export const silentLogger: TokenManagerLogger = Object.freeze({
  debug() {},
  info() {},
  warn() {},
  error() {},
});
