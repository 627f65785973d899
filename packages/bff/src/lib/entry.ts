// The entry handler: the first thing a request on the BFF's paths meets, in the Express router and in
// the router-less fast path (bff.handleRequest). One matcher (routing.ts, SECURITY X5) decides what the
// path is; then the shutdown gate, the cross-site check (X2), and the hand-off: remote-API calls go
// straight to the proxy engine, everything else on to the /bff endpoints.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import { crossSiteError } from './csrf.js';
import { BffError } from './errors.js';
import { sendError } from './http/problem.js';
import type { ProxyEngine } from './proxy/engine.js';
import type { EntryKind } from './routing.js';
import type { ShutdownGate } from './shutdown.js';

const NOT_FOUND = new BffError('ERR_BFF_NOT_FOUND', 'not found');

/** What the entry handler needs. */
export interface EntryDeps {
  readonly origin: string;
  readonly entry: (path: string) => EntryKind;
  readonly gate: ShutdownGate;
  readonly engine: ProxyEngine;
}

/** The router's first middleware: entry checks, then the proxy for API calls, `next()` otherwise. */
export function createEntryHandler({ origin, entry, gate, engine }: EntryDeps): RequestHandler {
  return (req, res, next) => {
    const kind = entry(req.path);
    if (kind === 'other') return next();
    if (gate.closing) return gate.refuse(res);
    if (kind === 'not-found') return sendError(res, NOT_FOUND);
    gate.track(res);
    if (kind !== 'backchannel') {
      const crossSite = crossSiteError(req, origin);
      if (crossSite) return sendError(res, crossSite);
    }
    if (kind !== 'api') return next();
    // A remote-API call goes straight to the proxy engine: the layers between here and the remote-API
    // router (the /bff endpoints and the back-channel route) cannot match a path outside `/bff` (remote-API
    // prefixes may not lie inside it), so walking them only costs router work on every proxied call. The
    // engine does all its own checks (raw-target match, path safety, method, X-CSRF, content type) exactly
    // as when reached through the router, and a path it does not take still falls through via `next`.
    engine.handle(req, res, next);
  };
}

/**
 * The same remote-API branch without Express: for hosts that hand requests to the BFF before their app
 * (bff.handleRequest), so a proxied call costs no Express routing, no host middleware. Same matcher,
 * same cross-site check, same engine as the entry handler.
 */
export function createFastPath({
  origin,
  entry,
  gate,
  engine,
}: EntryDeps): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    if (entry(path) !== 'api') return false;
    if (gate.closing) {
      gate.refuse(res);
      return true;
    }
    gate.track(res);
    const crossSite = crossSiteError(req, origin);
    if (crossSite) {
      sendError(res, crossSite);
      return true;
    }
    // False when not one of the engine's routes after all (it decides on the raw target).
    return engine.take(req, res);
  };
}
