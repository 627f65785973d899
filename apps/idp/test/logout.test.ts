import { type RunningIdp, startIdp, TestBrowser } from '@gatehouse/testing';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Receiver, startReceiver } from './receiver.js';

let idp: RunningIdp;
let rp: Receiver;
let config: oidc.Configuration;
const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

beforeAll(async () => {
  rp = await startReceiver();
  idp = await startIdp({ bffBaseUrl: rp.url });
  config = await oidc.discovery(new URL(idp.url), 'bff', undefined, oidc.ClientSecretBasic('bff-secret'), {
    execute: [oidc.allowInsecureRequests],
  });
});
afterAll(async () => {
  await idp?.close();
  await rp?.close();
});

async function signIn(browser: TestBrowser, username = 'alice') {
  const verifier = oidc.randomPKCECodeVerifier();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: `${rp.url}/bff/callback`,
    scope: 'openid profile offline_access api',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  });
  const done = await browser.login(url, { username, password: username });
  return oidc.authorizationCodeGrant(config, new URL(done.url), { pkceCodeVerifier: verifier });
}

describe('RP-initiated logout and back-channel logout', () => {
  it('B2/O4: logout with id_token_hint needs no confirmation, delivers a verifiable logout token to the loopback BFF, and redirects with state', async () => {
    const browser = new TestBrowser();
    const tokens = await signIn(browser);
    const sid = tokens.claims()?.sid;
    expect(typeof sid).toBe('string');

    const delivered = rp.nextLogoutToken();
    const endSession = oidc.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token!,
      post_logout_redirect_uri: `${rp.url}/`,
      state: 'xyz',
    });
    const done = await browser.follow(endSession);
    expect(done.url).toBe(`${rp.url}/?state=xyz`);
    // No page asked "do you want to sign out?": the only IdP page was the self-submitting form.
    expect(done.hops.filter((h) => h.status === 200 && h.url.startsWith(idp.url))).toHaveLength(1);

    const logoutToken = await delivered;
    const { payload, protectedHeader } = await jwtVerify(
      logoutToken,
      createRemoteJWKSet(new URL(`${idp.url}/jwks`)),
      {
        issuer: idp.issuer,
        audience: 'bff',
        algorithms: ['RS256'],
      },
    );
    expect(protectedHeader.typ).toBe('logout+jwt');
    expect(payload.sub).toBe('alice');
    expect(payload.sid).toBe(sid);
    expect(payload.events).toEqual({ [BACKCHANNEL_EVENT]: {} });
    expect(payload).not.toHaveProperty('nonce');
    expect(typeof payload.jti).toBe('string');
    expect(typeof payload.iat).toBe('number');
    expect(typeof payload.exp).toBe('number');

    // The IdP session is gone (a new authorization shows the login page again). The offline_access
    // grant outlives it, as OIDC Core §11 intends: revoking the refresh token is the RP's job (O3).
    expect((await oidc.refreshTokenGrant(config, tokens.refresh_token!)).access_token).toBeTruthy();
    const again = await browser.follow(
      oidc.buildAuthorizationUrl(config, {
        redirect_uri: `${rp.url}/bff/callback`,
        scope: 'openid',
        code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
        code_challenge_method: 'S256',
      }),
    );
    expect(again.text).toMatch(/name="password"/);
  });

  it('O4: an unregistered post_logout_redirect_uri is refused', async () => {
    const browser = new TestBrowser();
    const tokens = await signIn(browser);
    const done = await browser.follow(
      oidc.buildEndSessionUrl(config, {
        id_token_hint: tokens.id_token!,
        post_logout_redirect_uri: 'https://evil.example/',
      }),
    );
    expect(done.status).toBe(400);
    expect(done.hops.every((h) => !h.location?.startsWith('https://evil.example'))).toBe(true);
  });

  it('B4: endSessions(sub) ends every IdP session of the user and notifies the BFF once per session', async () => {
    const first = new TestBrowser();
    const second = new TestBrowser();
    const a = await signIn(first, 'bob');
    const b = await signIn(second, 'bob');
    const before = rp.logoutTokens.length;
    const result = await idp.endSessions('bob');
    expect(result).toEqual({ sessions: 2, notified: ['bff', 'bff'], failed: [] });
    const sids = await Promise.all(
      rp.logoutTokens.slice(before).map(async (t) => {
        const { payload } = await jwtVerify(t, createRemoteJWKSet(new URL(`${idp.url}/jwks`)), {
          issuer: idp.issuer,
          audience: 'bff',
        });
        expect(decodeProtectedHeader(t).typ).toBe('logout+jwt');
        return payload.sid;
      }),
    );
    expect(new Set(sids)).toEqual(new Set([a.claims()?.sid, b.claims()?.sid]));
    await expect(oidc.refreshTokenGrant(config, a.refresh_token!)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    await expect(oidc.refreshTokenGrant(config, b.refresh_token!)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
  });
});
