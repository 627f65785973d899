import { type RunningIdp, startIdp, TestBrowser } from '@gatehouse/testing';
import { calculateJwkThumbprint, decodeJwt, exportJWK } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultClients, resolveIdpOptions } from '../src/app.js';
import { type Receiver, startReceiver } from './receiver.js';

const insecure = { execute: [oidc.allowInsecureRequests] };
let rp: Receiver;
let parIdp: RunningIdp;
let plainIdp: RunningIdp;

beforeAll(async () => {
  rp = await startReceiver();
  parIdp = await startIdp({ bffBaseUrl: rp.url, requirePushedAuthorizationRequests: true });
  plainIdp = await startIdp({ bffBaseUrl: rp.url });
});
afterAll(async () => {
  await parIdp?.close();
  await plainIdp?.close();
  await rp?.close();
});

const bffClient = (idp: RunningIdp) =>
  oidc.discovery(new URL(idp.url), 'bff', undefined, oidc.ClientSecretBasic('bff-secret'), insecure);

async function authorizationParams(scope: string, extra: Record<string, string> = {}) {
  const verifier = oidc.randomPKCECodeVerifier();
  return {
    verifier,
    params: {
      redirect_uri: `${rp.url}/bff/callback`,
      scope,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      ...extra,
    },
  };
}

describe('PAR for the bff client (requirePushedAuthorizationRequests / IDP_REQUIRE_PAR)', () => {
  it('is off by default; on, the bff client is registered with require_pushed_authorization_requests', () => {
    const bffOf = (options: Parameters<typeof resolveIdpOptions>[0]) =>
      defaultClients(resolveIdpOptions(options)).find((c) => c.client_id === 'bff');
    expect(bffOf({ issuer: 'http://127.0.0.1:4999' })).not.toHaveProperty(
      'require_pushed_authorization_requests',
    );
    expect(
      bffOf({ issuer: 'http://127.0.0.1:4999', requirePushedAuthorizationRequests: true }),
    ).toMatchObject({ require_pushed_authorization_requests: true });
    expect(() =>
      resolveIdpOptions({
        issuer: 'http://127.0.0.1:4999',
        requirePushedAuthorizationRequests: 'yes' as unknown as boolean,
      }),
    ).toThrow(/requirePushedAuthorizationRequests must be a boolean/);
  });

  it('L16: an authorization request without request_uri is refused with the OP’s error, no code', async () => {
    const config = await bffClient(parIdp);
    const { params } = await authorizationParams('openid offline_access api', { state: 'st' });
    const done = await new TestBrowser().follow(oidc.buildAuthorizationUrl(config, params));
    const back = new URL(done.url);
    expect(back.origin + back.pathname).toBe(`${rp.url}/bff/callback`);
    expect(back.searchParams.get('error')).toBe('invalid_request');
    expect(back.searchParams.get('error_description')).toMatch(/pushed authorization request must be used/i);
    expect(back.searchParams.get('state')).toBe('st');
    expect(back.searchParams.has('code')).toBe(false);
    expect(done.hops.some((h) => h.url.includes('/interaction/'))).toBe(false);
  });

  it('L16: a pushed request signs in (offline_access honoured: a refresh token); its request_uri works once', async () => {
    const config = await bffClient(parIdp);
    const { verifier, params } = await authorizationParams('openid profile offline_access api');
    const url = await oidc.buildAuthorizationUrlWithPAR(config, params);
    // The front channel carries only client_id and request_uri.
    expect([...url.searchParams.keys()].sort()).toEqual(['client_id', 'request_uri']);
    const browser = new TestBrowser();
    const done = await browser.login(url, { username: 'alice', password: 'alice' });
    const tokens = await oidc.authorizationCodeGrant(config, new URL(done.url), {
      pkceCodeVerifier: verifier,
    });
    expect(tokens.refresh_token).toBeTruthy();
    expect(decodeJwt(tokens.access_token)).toMatchObject({ sub: 'alice', scope: 'api' });
    expect(tokens.claims()).toMatchObject({ sub: 'alice', name: 'Alice Liddell' });

    const replay = new URL((await browser.follow(url)).url);
    expect(replay.searchParams.get('error')).toBe('invalid_request_uri');
    expect(replay.searchParams.has('code')).toBe(false);
  });

  it('without offline_access no refresh token, even when the client sends the private offline marker itself', async () => {
    const marker = { gatehouse_offline_access: '1' };
    // Pushed (the marker in the PAR body and again on the front channel).
    const config = await bffClient(parIdp);
    const pushed = await authorizationParams('openid api', marker);
    const url = await oidc.buildAuthorizationUrlWithPAR(config, pushed.params);
    url.searchParams.set('gatehouse_offline_access', '1');
    const browser = new TestBrowser();
    const viaPar = await browser.login(url, { username: 'alice', password: 'alice' });
    const parTokens = await oidc.authorizationCodeGrant(config, new URL(viaPar.url), {
      pkceCodeVerifier: pushed.verifier,
    });
    expect(parTokens.access_token).toBeTruthy();
    expect(parTokens.refresh_token).toBeUndefined();

    // Front channel only (GET /auth), on the IdP that does not require PAR.
    const plain = await bffClient(plainIdp);
    const direct = await authorizationParams('openid api', marker);
    const done = await new TestBrowser().login(oidc.buildAuthorizationUrl(plain, direct.params), {
      username: 'alice',
      password: 'alice',
    });
    const tokens = await oidc.authorizationCodeGrant(plain, new URL(done.url), {
      pkceCodeVerifier: direct.verifier,
    });
    expect(tokens.access_token).toBeTruthy();
    expect(tokens.refresh_token).toBeUndefined();
  });

  it('PAR also works (and honours offline_access) on the IdP that does not require it', async () => {
    const config = await bffClient(plainIdp);
    const { verifier, params } = await authorizationParams('openid offline_access api');
    const url = await oidc.buildAuthorizationUrlWithPAR(config, params);
    const done = await new TestBrowser().login(url, { username: 'bob', password: 'bob' });
    const tokens = await oidc.authorizationCodeGrant(config, new URL(done.url), {
      pkceCodeVerifier: verifier,
    });
    expect(tokens.refresh_token).toBeTruthy();
  });
});

describe('DPoP at the sample IdP (RFC 9449)', () => {
  it('D1/L8: advertises DPoP and issues token_type DPoP with cnf.jkt when a proof is sent (code and refresh)', async () => {
    const meta = (await (await fetch(`${plainIdp.url}/.well-known/openid-configuration`)).json()) as {
      dpop_signing_alg_values_supported?: string[];
    };
    expect(meta.dpop_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256']));

    const config = await bffClient(plainIdp);
    const keyPair = await oidc.randomDPoPKeyPair('ES256');
    const jkt = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey));
    const DPoP = oidc.getDPoPHandle(config, keyPair);
    const { verifier, params } = await authorizationParams('openid offline_access api');
    const done = await new TestBrowser().login(oidc.buildAuthorizationUrl(config, params), {
      username: 'alice',
      password: 'alice',
    });
    const tokens = await oidc.authorizationCodeGrant(
      config,
      new URL(done.url),
      { pkceCodeVerifier: verifier },
      undefined,
      { DPoP },
    );
    expect(tokens.token_type.toLowerCase()).toBe('dpop');
    expect(decodeJwt(tokens.access_token).cnf).toEqual({ jkt });

    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!, undefined, { DPoP });
    expect(refreshed.token_type.toLowerCase()).toBe('dpop');
    expect(decodeJwt(refreshed.access_token).cnf).toEqual({ jkt });
    // A confidential client's refresh token is not bound to the key (RFC 9449 §5): refreshing
    // without a proof gives a Bearer access token, without cnf.
    const bearer = await oidc.refreshTokenGrant(config, refreshed.refresh_token!);
    expect(bearer.token_type.toLowerCase()).toBe('bearer');
    expect(decodeJwt(bearer.access_token).cnf).toBeUndefined();
  });
});

describe('DPoP nonces at the sample IdP (requireDpopNonce / IDP_DPOP_NONCE)', () => {
  it('D1: off by default; must be a boolean', () => {
    expect(resolveIdpOptions({ issuer: 'http://127.0.0.1:4999' }).requireDpopNonce).toBe(false);
    expect(() =>
      resolveIdpOptions({ issuer: 'http://127.0.0.1:4999', requireDpopNonce: 'yes' as never }),
    ).toThrow(/requireDpopNonce must be a boolean/);
  });

  it('D1: on, a proof without the nonce gets 400 use_dpop_nonce with a DPoP-Nonce; with it, a bound token', async () => {
    const nonceIdp = await startIdp({ bffBaseUrl: rp.url, requireDpopNonce: true });
    try {
      const statuses: Array<[number, string | null]> = [];
      const config = await oidc.discovery(
        new URL(nonceIdp.url),
        'bff',
        undefined,
        oidc.ClientSecretBasic('bff-secret'),
        {
          ...insecure,
          [oidc.customFetch]: async (url: string, init: RequestInit) => {
            const response = await fetch(url, init);
            if (url.endsWith('/token')) statuses.push([response.status, response.headers.get('dpop-nonce')]);
            return response;
          },
        },
      );
      const keyPair = await oidc.randomDPoPKeyPair('ES256');
      const { verifier, params } = await authorizationParams('openid offline_access api');
      const done = await new TestBrowser().login(oidc.buildAuthorizationUrl(config, params), {
        username: 'alice',
        password: 'alice',
      });
      const tokens = await oidc.authorizationCodeGrant(
        config,
        new URL(done.url),
        { pkceCodeVerifier: verifier },
        undefined,
        { DPoP: oidc.getDPoPHandle(config, keyPair) },
      );
      expect(statuses[0]?.[0]).toBe(400);
      expect(statuses[0]?.[1]).toBeTruthy();
      expect(statuses.map(([status]) => status)).toEqual([400, 200]);
      expect(decodeJwt(tokens.access_token).cnf).toEqual({
        jkt: await calculateJwkThumbprint(await exportJWK(keyPair.publicKey)),
      });
    } finally {
      await nonceIdp.close();
    }
  });
});
