// The public types of createBff's result: the Bff object, its options and what `localApi()` puts on
// `req.bff`.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { NextFunction, Request, RequestHandler, Response, Router } from 'express';
import type { ResolvedBffConfig } from './config.js';
import type { BffExtensionContext } from './extension-context.js';
import type { SessionUser } from './session/data.js';
import type { SessionMatch } from './store/types.js';

/** What local API handlers get on `req.bff` after {@link Bff.localApi}. */
export interface BffRequestContext {
  /** The signed-in user, or undefined on routes with `requireUser: false`. */
  readonly user: SessionUser | undefined;
  /** The user's access token, refreshed when needed. Throws BffError (401/503). */
  getAccessToken(options?: { forceRefresh?: boolean; resource?: string }): Promise<string>;
}

declare global {
  namespace Express {
    interface Request {
      /** Set by `bff.localApi()`. */
      bff?: BffRequestContext;
    }
  }
}

/** Options of {@link Bff.localApi}. */
export interface LocalApiOptions {
  /** Answer 401 without a session. Default true. */
  requireUser?: boolean;
  /** Require `X-CSRF: 1`. Default true. */
  csrf?: boolean;
}

/** A session as listed by the session admin API (no tokens, no session id). */
export interface SessionSummary {
  /** A stable, non-secret handle of the session (hash of its id). */
  readonly handle: string;
  readonly iss: string;
  readonly sub: string;
  readonly sid: string | undefined;
  /** Epoch seconds. */
  readonly createdAt: number;
  readonly lastSeenAt: number;
  readonly expiresAt: number;
}

/** The object createBff returns. */
export interface Bff {
  /** Mount at the root of the host: `app.use(bff.router)`. */
  readonly router: Router;
  /** Guard for the host's own API routes: X-CSRF, session, `req.bff`. Answers 401 JSON, never a redirect. */
  localApi(options?: LocalApiOptions): RequestHandler;
  /** Error handler for the host's local API routes: BffError → problem+json with its status and code. */
  readonly errorHandler: (err: unknown, req: Request, res: Response, next: NextFunction) => void;
  /**
   * The fast path for remote-API calls, ahead of Express: answers a call under a declared remote-API
   * prefix (cross-site check, then the proxy) and returns true; returns false for anything else, which
   * the host then hands to its app. Optional — `router` proxies the same calls — but it skips Express's
   * routing and every host middleware for them (see docs/remote-apis.md, "Fast path"):
   * `createServer((req, res) => bff.handleRequest(req, res) || app(req, res))`.
   */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean;
  /** Handles a WebSocket upgrade for a remote API; false when the path is not one. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  /** Listens for upgrades on `server` (sockets for unknown paths are closed). */
  attach(server: Server): void;
  /** The signed-in user of a request (its session cookie). */
  getUser(req: IncomingMessage): Promise<SessionUser | undefined>;
  /** The user's access token for a request, refreshed when needed. */
  getAccessToken(
    req: IncomingMessage,
    options?: { forceRefresh?: boolean; resource?: string },
  ): Promise<string>;
  /** Session admin API: list and revoke the sessions of a user (`sub`) or an OP session (`sid`). */
  readonly sessions: {
    list(match: SessionMatch): Promise<SessionSummary[]>;
    revoke(match: SessionMatch): Promise<number>;
  };
  /** The resolved, frozen configuration. */
  readonly config: ResolvedBffConfig;
  /** Request-level helpers for extensions (the back-channel route uses the same). */
  readonly context: BffExtensionContext;
  /** Runs discovery now (it otherwise runs on first use); rejects with BffError on failure. */
  ready(): Promise<void>;
  /**
   * Graceful shutdown. From the call on, new requests to the BFF's paths (`/bff/*`, remote APIs,
   * `localApi()` routes, WebSocket upgrades) get 503 `ERR_BFF_SHUTTING_DOWN` with `Retry-After` and
   * `Connection: close`; requests and token refreshes already under way may finish, for at most
   * `timeout` seconds; then the proxy's keep-alive agents and the store the BFF created itself (the
   * default memory store) are closed. A store you passed in (and its Redis client) stays open: close it
   * after this resolves. Call it before closing the HTTP server's remaining connections; repeated calls
   * return the same promise.
   */
  close(options?: BffCloseOptions): Promise<void>;
}

/** Options of {@link Bff.close}. */
export interface BffCloseOptions {
  /** Seconds to let in-flight requests and refreshes finish. Default 10. */
  timeout?: number;
}
