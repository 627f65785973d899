// Remote-API proxy (issue 6): the entry points createBff uses. The engine lives in engine.ts; the
// router and the upgrade handler below share the one engine of a BFF (and so one keep-alive pool per
// upstream).
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type Request, type Response, Router } from 'express';
import type { ProxyEngine } from './engine.js';

export type { ProxyEngine, ProxyEngineOptions } from './engine.js';
export { createProxyEngine } from './engine.js';
export type {
  RateLimitOptions,
  RemoteApiOptions,
  RemoteApiTokenType,
  ResolvedRemoteApi,
} from './options.js';
export { resolveRemoteApis } from './options.js';
export type { ClientTokenOptions, UserTokenOptions } from './route.js';
export type { ProxyRateLimiter, ProxyTokens } from './steps.js';

/**
 * The Express router that proxies the declared remote APIs (SECURITY P1–P6). Mount it before anything
 * that parses bodies: bodies are streamed, never buffered. Paths outside the declared prefixes fall
 * through to the next handler.
 */
export function createRemoteApiRouter(engine: ProxyEngine, hasRoutes: boolean): Router {
  const router = Router();
  if (hasRoutes) router.use((req: Request, res: Response, next) => engine.handle(req, res, next));
  return router;
}

/**
 * Handles WebSocket upgrades on declared prefixes: `Origin` must be the BFF's own origin (403), the
 * route's token rules apply (401 without a session where one is needed), and the token goes upstream
 * in the handshake. Returns false when the path is not a remote API, so the host can handle it.
 */
export function createUpgradeHandler(
  engine: ProxyEngine,
): (req: IncomingMessage, socket: Duplex, head: Buffer) => boolean {
  return (req, socket, head) => engine.upgrade(req, socket, head);
}
