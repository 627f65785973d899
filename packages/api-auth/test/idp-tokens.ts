// Real tokens from the sample IdP: user tokens through the code flow (TestBrowser + openid-client)
// and client tokens through client credentials. Shared by the api-auth and sample-API suites.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type RunningIdp, startIdp, TestBrowser } from '@gatehouse/testing';
import * as oidc from 'openid-client';

export interface IdpFixture {
  readonly idp: RunningIdp;
  /** Access token (and ID token) of a user, via authorization code + PKCE as the `bff` client. */
  userTokens(username: 'alice' | 'bob'): Promise<{ access_token: string; id_token: string }>;
  /** Access token of the `worker` client (client credentials, scope api.reports). */
  clientToken(): Promise<string>;
  close(): Promise<void>;
}

/** Starts the sample IdP with a stand-in redirect target for the `bff` client. */
export async function startIdpFixture(options: Parameters<typeof startIdp>[0] = {}): Promise<IdpFixture> {
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
