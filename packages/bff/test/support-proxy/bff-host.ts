// A real createBff in an Express host on loopback, for the proxy, back-channel and scale-out suites.
// The IdP registers `baseUrl` (redirect and back-channel URIs), so the port is chosen before start-up.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TestBrowser } from '@gatehouse/testing';
import express, { type Express } from 'express';
import { type Bff, createBff } from '../../src/lib/bff.js';
import type { BffOptions } from '../../src/lib/bff-options.js';

export const BFF_SECRET = 'bff-secret';
export const SESSION_SECRET = 'proxy-tests-session-secret-0123456789abcdef';

export interface BffHost {
  readonly bff: Bff;
  readonly server: Server;
  /** Where this instance listens (may differ from the public baseUrl behind a balancer). */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Starts createBff (client `bff` of the sample IdP) on `port` (0 = any) with `options` merged over
 * test defaults. `baseUrl` is the public URL the IdP knows. `configure` sets the Express app up before
 * the BFF is mounted (e.g. `trust proxy` behind a TLS-terminating front).
 */
export async function startBffHost(
  options: Partial<BffOptions> & Pick<BffOptions, 'issuer' | 'baseUrl'>,
  port = 0,
  configure?: (app: Express) => void,
): Promise<BffHost> {
  const bff = createBff({
    clientId: 'bff',
    clientSecret: BFF_SECRET,
    sessionSecret: SESSION_SECRET,
    apiScopes: ['api'],
    ...options,
  });
  const app = express();
  configure?.(app);
  app.use(bff.router);
  app.get('/', (_req, res) => {
    res.type('text/plain').send('home');
  });
  const server = createServer(app);
  bff.attach(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    bff,
    server,
    url: `http://127.0.0.1:${actual}`,
    port: actual,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await bff.close();
    },
  };
}

/** Signs `user` in through `baseUrl` with a fresh TestBrowser and returns it. */
export async function signIn(baseUrl: string, user = 'alice'): Promise<TestBrowser> {
  const browser = new TestBrowser();
  const done = await browser.login(`${baseUrl}/bff/login`, { username: user, password: user });
  if (done.status !== 200 || !done.url.startsWith(baseUrl)) {
    throw new Error(`sign-in as ${user} ended at ${done.status} ${done.url}`);
  }
  return browser;
}

/** A same-origin SPA call (`X-CSRF: 1`, initiator = the app) through the browser's cookie jar. */
export async function spaFetch(
  browser: TestBrowser,
  baseUrl: string,
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Response> {
  return browser.fetch(`${baseUrl}${path}`, {
    method: init.method ?? 'GET',
    headers: { 'x-csrf': '1', ...init.headers },
    body: init.body,
    initiator: `${baseUrl}/`,
  });
}
