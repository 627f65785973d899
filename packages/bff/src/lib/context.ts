// The seam between the BFF's parts. `createBff` (bff.ts) builds one BffContext at start-up and hands
// it to every route module: the endpoints (login, callback, user, logout, …), the remote-API proxy and
// the back-channel logout route. Route modules depend on this interface, never on each other.
// Implemented by the core in bff.ts. Shared request checks (X-CSRF, Sec-Fetch-Site/Origin) are in
// csrf.ts; errors are BffError (errors.ts) and go to the browser via sendJsonError.
import type { IncomingMessage } from 'node:http';
import type { Request } from 'express';
import type { Configuration } from 'openid-client';
import type { ResolvedBffConfig } from './config.js';
import type { Logger } from './logger.js';
import type { RateDecision } from './store/types.js';

export type { Logger } from './logger.js';

/** The parts of the session the proxy and the routes read. Tokens are decrypted only on demand. */
export interface SessionUser {
  /** The session id of the BFF session (never sent anywhere but the cookie). */
  readonly sessionId: string;
  /** Issuer, subject and OP session id from the ID token (index keys for back-channel logout). */
  readonly iss: string;
  readonly sub: string;
  readonly sid?: string;
  /** The user's ID-token and UserInfo claims, as shown by /bff/user. */
  readonly claims: Readonly<Record<string, unknown>>;
}

/** What the route modules need from the core. */
export interface BffContext {
  readonly config: ResolvedBffConfig;
  readonly logger: Logger;
  /** Discovered OP metadata and client configuration (discovery runs once, lazily, then cached). */
  getOidcConfiguration(): Promise<Configuration>;
  /**
   * The authenticated user of this request, or undefined when anonymous/expired. Works on Express
   * requests after the session middleware, and on raw upgrade requests (WebSocket) by reading the
   * session cookie itself.
   * @throws BffError `ERR_BFF_STORE_UNAVAILABLE` (503) when the store cannot be read.
   */
  getUser(req: Request | IncomingMessage): Promise<SessionUser | undefined>;
  /**
   * The session's access token, refreshed single-flight (in-process and cluster-wide) when it expires
   * within the margin or when `forceRefresh` is set.
   * @throws BffError `ERR_BFF_NO_SESSION` (401), `ERR_BFF_SESSION_ENDED` (401, invalid_grant),
   *   `ERR_BFF_IDP_UNAVAILABLE` (503), `ERR_BFF_STORE_UNAVAILABLE` (503).
   */
  getUserAccessToken(
    req: Request | IncomingMessage,
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
    req: Request | IncomingMessage,
    bucket: string,
    capacity: number,
    refillPerSecond: number,
  ): Promise<RateDecision | undefined>;
}
