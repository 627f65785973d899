// WebSocket upgrades go through http-proxy-middleware's public API (its `upgrade` method, the `on`
// events and its exported `proxyEventsPlugin`): a handshake is rare next to plain calls, so its cost does
// not matter, and it hands the two sockets over to each other once. Plain HTTP calls do not come here;
// they go through the keep-alive client in forward.ts.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createProxyMiddleware, proxyEventsPlugin } from 'http-proxy-middleware';
import type { Logger } from '../logger.js';
import type { ResolvedRemoteApi } from './options.js';

/** Proxies one prepared handshake (headers rewritten, `req.url` the upstream path) to the route's upstream. */
export type UpgradeForwarder = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/** Builds the upgrade forwarder of one route, once at start-up. */
export function createUpgradeForwarder(api: ResolvedRemoteApi, logger: Logger): UpgradeForwarder {
  const timeoutMs = Math.round(api.timeout * 1000);
  const proxy = createProxyMiddleware<IncomingMessage>({
    target: api.upstreamOrigin,
    changeOrigin: true,
    // req.url is already the exact upstream path: use it as is (no legacy url.parse of it).
    toProxy: true,
    xfwd: false,
    // Only the event wiring; the default error plugin would answer with the upstream's host and path.
    ejectPlugins: true,
    plugins: [proxyEventsPlugin],
    on: {
      proxyReqWs: (proxyReq) => {
        // The handshake's answer must come within the route's timeout, like a plain call's headers.
        proxyReq.setTimeout(timeoutMs, () => proxyReq.destroy());
      },
      error: (err, _req, target) => {
        logger.warn(
          { prefix: api.prefix, code: (err as NodeJS.ErrnoException).code },
          'remote API WebSocket upgrade failed',
        );
        // The handshake may be half done, so no HTTP answer is safe: just close.
        if ('destroy' in target) target.destroy();
      },
    },
  });
  return (req, socket, head) => {
    void proxy.upgrade(req, socket as Socket, head);
  };
}
