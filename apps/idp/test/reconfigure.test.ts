import { startIdp, TestBrowser } from '@gatehouse/testing';
import * as oidc from 'openid-client';
import { describe, expect, it } from 'vitest';
import { startReceiver } from './receiver.js';

const insecure = { execute: [oidc.allowInsecureRequests] };

async function codeFlow(
  issuer: string,
  clientId: string,
  secret: string,
  redirectUri: string,
  browser: TestBrowser,
) {
  const config = await oidc.discovery(
    new URL(issuer),
    clientId,
    undefined,
    oidc.ClientSecretBasic(secret),
    insecure,
  );
  const verifier = oidc.randomPKCECodeVerifier();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid offline_access api',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  });
  const done = await browser.login(url, { username: 'alice', password: 'alice' });
  return oidc.authorizationCodeGrant(config, new URL(done.url), { pkceCodeVerifier: verifier });
}

describe('reconfiguring a running IdP', () => {
  it('setBffBaseUrl moves the bff client to a BFF started after the IdP; sessions and tokens survive', async () => {
    const idp = await startIdp();
    const rp = await startReceiver();
    try {
      const browser = new TestBrowser();
      idp.setBffBaseUrl(rp.url);
      expect(idp.config.bffBaseUrl).toBe(rp.url);
      const tokens = await codeFlow(idp.url, 'bff', 'bff-secret', `${rp.url}/bff/callback`, browser);
      expect(tokens.refresh_token).toBeTruthy();

      // The old redirect URI is no longer registered: refused on an IdP page, no redirect.
      const old = new URL(`${idp.url}/auth`);
      old.search = new URLSearchParams({
        client_id: 'bff',
        response_type: 'code',
        scope: 'openid',
        redirect_uri: 'http://localhost:3000/bff/callback',
        code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
        code_challenge_method: 'S256',
      }).toString();
      const refused = await browser.follow(old);
      expect(refused.status).toBe(400);
      expect(refused.url.startsWith(idp.url)).toBe(true);

      // The logout token now goes to the new origin.
      const delivered = rp.nextLogoutToken();
      await idp.endSessions('alice');
      expect(await delivered).toMatch(/^ey/);
    } finally {
      await idp.close();
      await rp.close();
    }
  });

  it('addClient registers another confidential client; a duplicate id is a TypeError', async () => {
    const idp = await startIdp();
    const rp = await startReceiver();
    try {
      idp.addClient({
        client_id: 'bff-2',
        client_secret: 'bff-2-secret',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [`${rp.url}/bff/callback`],
        scope: 'openid profile email offline_access api',
      });
      const tokens = await codeFlow(
        idp.url,
        'bff-2',
        'bff-2-secret',
        `${rp.url}/bff/callback`,
        new TestBrowser(),
      );
      expect(tokens.claims()?.aud).toBe('bff-2');
      expect(() => idp.addClient({ client_id: 'bff' })).toThrow(/client_id "bff" is taken/);
    } finally {
      await idp.close();
      await rp.close();
    }
  });
});
