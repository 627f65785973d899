// The public view of one BFF for extensions (`bff.context`) and for the back-channel logout route:
// request-level helpers built on the same session and token steps the proxy and the endpoints use.
import type { IncomingMessage } from 'node:http';
import type { Configuration } from 'openid-client';
import type { ResolvedBffConfig } from './config.js';
import type { Logger } from './logger.js';
import type { SessionUser } from './session/data.js';
import type { RateDecision } from './store/types.js';

/** What extensions (and the back-channel route) get from a BFF: `bff.context`. */
export interface BffExtensionContext {
  readonly config: ResolvedBffConfig;
  readonly logger: Logger;
  /** Discovered OP metadata and client configuration (discovery runs once, lazily, then cached). */
  getOidcConfiguration(): Promise<Configuration>;
  /**
   * The authenticated user of this request (its session cookie), or undefined when anonymous/expired.
   * Works on Express requests and on raw upgrade requests alike.
   * @throws BffError `ERR_BFF_STORE_UNAVAILABLE` (503) when the store cannot be read.
   */
  getUser(req: IncomingMessage): Promise<SessionUser | undefined>;
  /**
   * The session's access token, refreshed single-flight (in-process and cluster-wide) when it expires
   * within the margin or when `forceRefresh` is set.
   * @throws BffError `ERR_BFF_NO_SESSION` (401), `ERR_BFF_SESSION_ENDED` (401, invalid_grant),
   *   `ERR_BFF_IDP_UNAVAILABLE` (503), `ERR_BFF_STORE_UNAVAILABLE` (503).
   */
  getUserAccessToken(
    req: IncomingMessage,
    options?: { forceRefresh?: boolean; resource?: string },
  ): Promise<string>;
  /** A client-credentials token for the BFF's own client (token-manager); throws BffError 401/503. */
  getClientAccessToken(options?: { resource?: string; scope?: string }): Promise<string>;
  /** Ends every session of (iss, sid) or (iss, sub) on every instance; returns how many ended. */
  endSessions(match: { iss: string; sid?: string; sub?: string }): Promise<number>;
  /** Records `key` once for `ttlSeconds` across instances; false when it was already recorded (replay). */
  claimOnce(key: string, ttlSeconds: number): Promise<boolean>;
  /**
   * Takes one call from the token bucket `bucket` of the request's session, across instances
   * (SECURITY P7); undefined when the request carries no validly signed session cookie.
   * @throws BffError `ERR_BFF_STORE_UNAVAILABLE` (503) when the store cannot be reached.
   */
  consumeRate(
    req: IncomingMessage,
    bucket: string,
    capacity: number,
    refillPerSecond: number,
  ): Promise<RateDecision | undefined>;
}

/** @deprecated Renamed {@link BffExtensionContext}; this alias goes in the next major version. */
export type BffContext = BffExtensionContext;
