// Remote-API proxy (issue 6): the entry points createBff uses. The engine lives in engine.ts; this file
// adapts the BffContext to it and makes sure the router and the upgrade handler share one engine (and
// so one keep-alive pool per upstream).
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type Request, type Response, Router } from 'express';
import type { BffContext } from '../context.js';
import { createProxyEngine, type ProxyEngine } from './engine.js';

export type { ProxyEngine, ProxyEngineOptions, ProxyRateLimiter, ProxyTokenSource } from './engine.js';
export { createProxyEngine } from './engine.js';
export type {
  RateLimitOptions,
  RemoteApiOptions,
  RemoteApiTokenType,
  ResolvedRemoteApi,
} from './options.js';
export { resolveRemoteApis } from './options.js';

const engines = new WeakMap<BffContext, ProxyEngine>();

/** The one proxy engine of a BFF, built on first use from its context. */
export function getProxyEngine(ctx: BffContext): ProxyEngine {
  let engine = engines.get(ctx);
  if (!engine) {
    engine = createProxyEngine({
      routes: ctx.config.remoteApis,
      publicOrigin: publicOriginOf(ctx),
      logger: ctx.logger,
      tokens: {
        hasUser: async (req) => (await ctx.getUser(req)) !== undefined,
        getUserAccessToken: (req, options) => ctx.getUserAccessToken(req, options),
        getClientAccessToken: (options) => ctx.getClientAccessToken(options),
      },
      rateLimiter: (req, bucket, capacity, refillPerSecond) =>
        ctx.consumeRate(req, bucket, capacity, refillPerSecond),
    });
    engines.set(ctx, engine);
  }
  return engine;
}

/**
 * The Express router that proxies the declared remote APIs (SECURITY P1–P6). Mount it after the
 * session middleware and before anything that parses bodies: bodies are streamed, never buffered.
 * Paths outside the declared prefixes fall through to the next handler.
 */
export function createRemoteApiRouter(ctx: BffContext): Router {
  const engine = getProxyEngine(ctx);
  const router = Router();
  if (ctx.config.remoteApis.length > 0) {
    router.use((req: Request, res: Response, next) => engine.handle(req, res, next));
  }
  return router;
}

/**
 * Handles WebSocket upgrades on declared prefixes: `Origin` must be the BFF's own origin (403), the
 * route's token rules apply (401 without a session where one is needed), and the token goes upstream
 * in the handshake. Returns false when the path is not a remote API, so the host can handle it.
 */
export function createUpgradeHandler(
  ctx: BffContext,
): (req: IncomingMessage, socket: Duplex, head: Buffer) => boolean {
  const engine = getProxyEngine(ctx);
  return (req, socket, head) => engine.upgrade(req, socket, head);
}

/** The BFF's public origin, for X-Forwarded-Proto/Host and the WebSocket Origin check. */
function publicOriginOf(ctx: BffContext): string {
  return ctx.config.origin;
}
