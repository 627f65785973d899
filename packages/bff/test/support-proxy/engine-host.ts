// Hosts the proxy engine in a bare Express app with a stand-in token source, for the proxy tests that
// need precise control over tokens (refresh counts, failures). The suites in proxy-bff*.test.ts run the
// same engine inside the real createBff against the real IdP and sample API.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { BffError } from '../../src/lib/errors.js';
import {
  createProxyEngine,
  type ProxyEngine,
  type RemoteApiOptions,
  resolveRemoteApis,
} from '../../src/lib/proxy/index.js';

export const silentLogger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * A double of the session and token steps: a "session" is the cookie `session=alice`; each forced
 * refresh mints a new token.
 */
export class FakeTokens {
  refreshes = 0;
  clientCalls = 0;
  failRefresh = false;
  get current(): string {
    return `user-token-${this.refreshes + 1}`;
  }
  loadSession = async (cookieHeader: string | undefined): Promise<{ id: string } | undefined> =>
    /\bsession=alice\b/.test(cookieHeader ?? '') ? { id: 'alice' } : undefined;
  getUserToken = async (
    _session: { id: string },
    options: { forceRefresh?: boolean; resource?: string | undefined } = {},
  ): Promise<string> => {
    if (options.forceRefresh) {
      if (this.failRefresh) throw new BffError('ERR_BFF_SESSION_ENDED', 'refresh rejected');
      this.refreshes += 1;
    }
    // A token "for" the resource, so a test can see which audience each upstream got.
    return options.resource ? `${this.current}@${options.resource}` : this.current;
  };
  getClientToken = async (
    options: { resource?: string | undefined; scope?: string | undefined } = {},
  ): Promise<string> => {
    this.clientCalls += 1;
    return options.resource ? `client-token@${options.resource}` : 'client-token';
  };
}

export interface EngineHost {
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  readonly engine: ProxyEngine;
  close(): Promise<void>;
}

/** Starts express + the proxy engine on 127.0.0.1:0 with the given routes. */
export async function startEngineHost(
  routes: RemoteApiOptions[],
  tokens: FakeTokens,
  publicOrigin = 'https://app.example',
): Promise<EngineHost> {
  const engine = createProxyEngine({
    routes: resolveRemoteApis(routes),
    publicOrigin,
    tokens,
    logger: silentLogger,
  });
  const app = express();
  app.use((req, res, next) => engine.handle(req, res, next));
  app.use((_req, res) => {
    res.status(404).json({ error: 'not_found' });
  });
  const server = createServer(app);
  server.on('upgrade', (req, socket, head) => {
    if (!engine.upgrade(req, socket, head)) socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    engine,
    close: () =>
      new Promise<void>((resolve) => {
        engine.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
