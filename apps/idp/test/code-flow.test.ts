import { parseForms, type RunningIdp, startIdp, TestBrowser } from '@gatehouse/testing';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAMPLE_API_AUDIENCE } from '../src/app.js';
import { type Receiver, startReceiver } from './receiver.js';

let idp: RunningIdp;
let rp: Receiver;
let config: oidc.Configuration;

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

/** Runs the code flow as the `bff` client up to the callback; returns the callback URL and checks. */
async function authorize(browser: TestBrowser, user = { username: 'alice', password: 'alice' }, extra = {}) {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: `${rp.url}/bff/callback`,
    scope: 'openid profile email offline_access api',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  });
  const done = await browser.login(url, user);
  return { done, verifier, state, nonce };
}

describe('authorization code flow with PKCE (bff client)', () => {
  it('L2/L9: issues a valid ID token, an RFC 9068 access token for the sample API and a refresh token', async () => {
    const browser = new TestBrowser();
    const { done, verifier, state, nonce } = await authorize(browser);
    expect(done.url.startsWith(`${rp.url}/bff/callback?`)).toBe(true);
    const callback = new URL(done.url);
    expect(callback.searchParams.get('iss')).toBe(idp.issuer); // RFC 9207
    expect(callback.searchParams.get('code')).toBeTruthy();

    const tokens = await oidc.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: verifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
    });
    const claims = tokens.claims();
    expect(claims).toMatchObject({
      iss: idp.issuer,
      aud: 'bff',
      sub: 'alice',
      name: 'Alice Liddell',
      given_name: 'Alice',
      family_name: 'Liddell',
      email: 'alice@example.com',
      email_verified: true,
    });
    expect(typeof claims?.sid).toBe('string');
    expect(tokens.refresh_token).toBeTruthy();
    expect(tokens.token_type.toLowerCase()).toBe('bearer');

    const jwks = createRemoteJWKSet(new URL(`${idp.url}/jwks`));
    const at = await jwtVerify(tokens.access_token, jwks, {
      issuer: idp.issuer,
      audience: SAMPLE_API_AUDIENCE,
      typ: 'at+jwt',
      algorithms: ['RS256'],
    });
    expect(at.payload).toMatchObject({ sub: 'alice', client_id: 'bff', scope: 'api' });
    expect(typeof at.payload.jti).toBe('string');
    expect(typeof at.payload.iat).toBe('number');
    expect(decodeProtectedHeader(tokens.access_token).typ).toBe('at+jwt');
  });

  it('L1: the login page is the IdP’s own form (username, password, submit), not devInteractions', async () => {
    const browser = new TestBrowser();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: `${rp.url}/bff/callback`,
      scope: 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    });
    const page = await browser.follow(url);
    expect(page.status).toBe(200);
    expect(page.url).toMatch(/\/interaction\/[\w-]+$/);
    expect(page.text).toMatch(/<input[^>]*name="username"/);
    expect(page.text).toMatch(/<input[^>]*type="password"[^>]*name="password"/);
    expect(page.text).toMatch(/<button type="submit">Sign in<\/button>/);
    expect(page.response.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(page.text).not.toContain('devInteractions');
  });

  it('wrong password → the login page again with an error, and no code is issued', async () => {
    const browser = new TestBrowser();
    const { done } = await authorize(browser, { username: 'alice', password: 'wrong' });
    expect(done.status).toBe(401);
    expect(done.text).toContain('Wrong username or password');
    expect(done.text).toMatch(/name="password"/);
    expect(done.hops.some((h) => h.location?.includes('code='))).toBe(false);
    // The form stays usable: the right password now completes the flow.
    const retry = await browser.submitLogin(done, { username: 'alice', password: 'alice' });
    expect(new URL(retry.url).searchParams.get('code')).toBeTruthy();
  });

  it('L6: Cancel on the login page returns error=access_denied to the client, with iss', async () => {
    const browser = new TestBrowser();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: `${rp.url}/bff/callback`,
      scope: 'openid',
      state: 's1',
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    });
    const page = await browser.follow(url);
    const cancel = parseForms(page.text, page.url).find((f) => f.action.endsWith('/abort'))!;
    const done = await browser.follow(cancel.action, {
      method: 'POST',
      form: cancel.fields,
      initiator: page.url,
    });
    const back = new URL(done.url);
    expect(back.pathname).toBe('/bff/callback');
    expect(back.searchParams.get('error')).toBe('access_denied');
    expect(back.searchParams.get('state')).toBe('s1');
    expect(back.searchParams.get('iss')).toBe(idp.issuer);
    expect(back.searchParams.has('code')).toBe(false);
  });

  it('a login form posted from another browser (no interaction cookie) is refused, no code', async () => {
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: `${rp.url}/bff/callback`,
      scope: 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    });
    const page = await new TestBrowser().follow(url);
    const done = await new TestBrowser().submitLogin(page, { username: 'alice', password: 'alice' });
    expect(done.status).toBe(400);
    expect(done.text).toContain('expired or was opened in another browser');
    expect(done.hops.some((h) => h.location?.includes('code='))).toBe(false);
  });

  it('a second authorization reuses the IdP session (no login page) and skips consent', async () => {
    const browser = new TestBrowser();
    await authorize(browser);
    const again = await authorize(browser);
    expect(again.done.url.startsWith(`${rp.url}/bff/callback?`)).toBe(true);
    expect(again.done.hops.every((h) => !h.url.includes('/interaction/'))).toBe(true);
  });

  it('prompt=none (silent login): a code with an IdP session, error=login_required without one', async () => {
    const silent = async (browser: TestBrowser) =>
      new URL(
        (
          await browser.follow(
            oidc.buildAuthorizationUrl(config, {
              redirect_uri: `${rp.url}/bff/callback`,
              scope: 'openid profile',
              prompt: 'none',
              code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
              code_challenge_method: 'S256',
            }),
          )
        ).url,
      );
    const anonymous = await silent(new TestBrowser());
    expect(anonymous.searchParams.get('error')).toBe('login_required');
    const browser = new TestBrowser();
    await authorize(browser);
    const signedIn = await silent(browser);
    expect(signedIn.searchParams.get('code')).toBeTruthy();
  });

  it('silent login from a cross-site iframe: the IdP session cookie is SameSite=None; Secure', async () => {
    const frameLogin = async (browser: TestBrowser) => {
      await authorize(browser);
      // The BFF's page (localhost) loads the IdP (127.0.0.1, another site) in an iframe.
      const frame = await browser.follow(
        oidc.buildAuthorizationUrl(config, {
          redirect_uri: `${rp.url}/bff/callback`,
          scope: 'openid',
          prompt: 'none',
          code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
          code_challenge_method: 'S256',
        }),
        { initiator: `${rp.url}/`, navigation: false },
      );
      expect(frame.hops[0]!.url.startsWith(idp.url)).toBe(true);
      return new URL(frame.url).searchParams;
    };
    // A browser that allows third-party cookies sends the IdP session: a code.
    const permissive = new TestBrowser({ thirdPartyCookies: true });
    expect((await frameLogin(permissive)).get('code')).toBeTruthy();
    const session = (await permissive.cookies(`${idp.url}/`)).find((c) => c.key === '_session');
    expect(session).toMatchObject({ sameSite: 'none', secure: true, httpOnly: true });
    // Today's browsers (and TestBrowser's default) block third-party cookies: login_required.
    expect((await frameLogin(new TestBrowser())).get('error')).toBe('login_required');
  });

  it('L2: a request without PKCE is rejected', async () => {
    const browser = new TestBrowser();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: `${rp.url}/bff/callback`,
      scope: 'openid',
    });
    const done = await browser.follow(url);
    const errorUrl = new URL(done.url);
    expect(errorUrl.searchParams.get('error')).toBe('invalid_request');
    expect(errorUrl.searchParams.get('error_description')).toMatch(/PKCE/);
  });

  it('an unknown client is rejected on an IdP error page (no redirect)', async () => {
    const browser = new TestBrowser();
    const url = new URL(`${idp.url}/auth`);
    url.search = new URLSearchParams({
      client_id: 'nope',
      response_type: 'code',
      redirect_uri: `${rp.url}/bff/callback`,
      scope: 'openid',
    }).toString();
    const done = await browser.follow(url);
    expect(done.status).toBe(400);
    expect(done.url.startsWith(idp.url)).toBe(true);
    expect(done.text).toContain('invalid_client');
  });

  it('a redirect URI that is not registered is rejected without redirecting to it', async () => {
    const browser = new TestBrowser();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: 'https://evil.example/callback',
      scope: 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    });
    const done = await browser.follow(url);
    expect(done.status).toBe(400);
    expect(done.hops.every((h) => !h.location?.startsWith('https://evil.example'))).toBe(true);
    expect(done.text).toContain('redirect_uri');
  });
});

describe('the IdP’s own start page', () => {
  it('GET / links to a sign-in that ends on a page with the user’s claims, and sign-out works', async () => {
    const browser = new TestBrowser();
    const home = await browser.follow(`${idp.url}/`);
    expect(home.status).toBe(200);
    expect(home.text).toContain('Try signing in');
    const done = await browser.login(`${idp.url}/demo/start`, { username: 'bob', password: 'bob' });
    expect(done.status).toBe(200);
    expect(done.url.startsWith(`${idp.url}/demo/callback?`)).toBe(true);
    expect(done.text).toContain('Signed in as Bob Builder');
    expect(done.text).toContain('bob@example.com');
    const out = await browser.follow(`${idp.url}/session/end?client_id=idp-demo`);
    expect(out.status).toBe(200);
    expect(out.text).toContain('You are signed out');
    // Replaying the callback (state used once) is refused.
    const replay = await browser.follow(done.url);
    expect(replay.status).toBe(400);
  });
});
