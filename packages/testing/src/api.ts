// In-process sample API for tests: the real Express app from apps/api on 127.0.0.1, a free port;
// and real tokens for it from the sample IdP (code flow as `bff`, client credentials as `worker`).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ApiConfig, createApp } from '@gatehouse/sample-api';
import * as oidc from 'openid-client';
import { TestBrowser } from './browser.js';
import { type RunningIdp, startIdp } from './idp.js';

/** A started sample API. */
export interface RunningApi {
  /** `http://127.0.0.1:<port>` (routes live under `/api`). */
  readonly url: string;
  /** Stops the server, dropping open keep-alive connections. */
  close(): Promise<void>;
}

/**
 * Starts the sample API ({@link ApiConfig}: at least `issuer`) on `127.0.0.1:0`. The API discovers
 * the issuer lazily, so it may start before the IdP. `publicUrl` defaults to the address it listens
 * on, so DPoP-bound tokens work (pass `requireDPoP: true` to make `/api/reports` DPoP-only).
 *
 * @example
 * const idp = await startIdp();
 * const api = await startApi({ issuer: idp.issuer, introspection: { clientId: 'api', clientSecret: 'api-secret' } });
 * afterAll(() => api.close());
 */
export async function startApi(options: ApiConfig): Promise<RunningApi> {
  // Listen first: the app needs its own URL (the DPoP htu base) before it is built.
  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  try {
    server.on('request', createApp({ publicUrl: url, ...options }));
  } catch (error) {
    server.close();
    throw error;
  }
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A sample IdP plus ways to get real tokens for the sample API from it. */
export interface ApiTokenSource {
  readonly idp: RunningIdp;
  /** Access token (and ID token) of a user, via authorization code + PKCE as the `bff` client. */
  userTokens(username: 'alice' | 'bob'): Promise<{ access_token: string; id_token: string }>;
  /** Access token of the `worker` client (client credentials, scope api.reports). */
  clientToken(): Promise<string>;
  close(): Promise<void>;
}

/**
 * Starts the sample IdP (see {@link startIdp}) with a stand-in redirect target for the `bff` client,
 * so tests get user tokens through the real code flow and client tokens through client credentials,
 * without a BFF.
 *
 * @example
 * const tokens = await startApiTokenSource();
 * const { access_token } = await tokens.userTokens('alice');
 * afterAll(() => tokens.close());
 */
export async function startApiTokenSource(
  options: Parameters<typeof startIdp>[0] = {},
): Promise<ApiTokenSource> {
  // The browser follows the IdP's redirect to the callback: answer it with a plain 200.
  const receiver: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('callback');
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const bffBaseUrl = `http://localhost:${(receiver.address() as AddressInfo).port}`;
  const idp = await startIdp({ ...options, bffBaseUrl });
  const insecure = { execute: [oidc.allowInsecureRequests] };
  const bff = await oidc.discovery(
    new URL(idp.url),
    'bff',
    undefined,
    oidc.ClientSecretBasic('bff-secret'),
    insecure,
  );
  const worker = await oidc.discovery(
    new URL(idp.url),
    'worker',
    undefined,
    oidc.ClientSecretBasic('worker-secret'),
    insecure,
  );

  return {
    idp,
    async userTokens(username) {
      const browser = new TestBrowser();
      const verifier = oidc.randomPKCECodeVerifier();
      const state = oidc.randomState();
      const url = oidc.buildAuthorizationUrl(bff, {
        redirect_uri: `${bffBaseUrl}/bff/callback`,
        scope: 'openid api',
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
      });
      const done = await browser.login(url, { username, password: username });
      const tokens = await oidc.authorizationCodeGrant(bff, new URL(done.url), {
        pkceCodeVerifier: verifier,
        expectedState: state,
      });
      if (!tokens.id_token) throw new Error('the IdP returned no id_token');
      return { access_token: tokens.access_token, id_token: tokens.id_token };
    },
    async clientToken() {
      const tokens = await oidc.clientCredentialsGrant(worker, { scope: 'api.reports' });
      return tokens.access_token;
    },
    async close() {
      await idp.close();
      await new Promise<void>((resolve) => {
        receiver.close(() => resolve());
        receiver.closeAllConnections();
      });
    },
  };
}
