import { type RunningIdp, startIdp, TestBrowser } from '@gatehouse/testing';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAMPLE_API_AUDIENCE } from '../src/app.js';
import { type Receiver, startReceiver } from './receiver.js';

let idp: RunningIdp;
let rp: Receiver;
const insecure = { execute: [oidc.allowInsecureRequests] };
/** A failed client_secret_basic is a 401 with a WWW-Authenticate challenge (RFC 6749 §5.2). */
const INVALID_CLIENT = {
  status: 401,
  cause: [expect.objectContaining({ parameters: expect.objectContaining({ error: 'invalid_client' }) })],
};

beforeAll(async () => {
  rp = await startReceiver();
  idp = await startIdp({ bffBaseUrl: rp.url, accessTokenTtl: 60 });
});
afterAll(async () => {
  await idp?.close();
  await rp?.close();
});

const client = (id: string, secret: string) =>
  oidc.discovery(new URL(idp.url), id, undefined, oidc.ClientSecretBasic(secret), insecure);

async function jwks() {
  const res = await fetch(`${idp.url}/jwks`);
  return (await res.json()) as { keys: Array<Record<string, unknown>> };
}

async function userTokens(scope = 'openid profile offline_access api') {
  const config = await client('bff', 'bff-secret');
  const verifier = oidc.randomPKCECodeVerifier();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: `${rp.url}/bff/callback`,
    scope,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  });
  const done = await new TestBrowser().login(url, { username: 'alice', password: 'alice' });
  return {
    config,
    tokens: await oidc.authorizationCodeGrant(config, new URL(done.url), { pkceCodeVerifier: verifier }),
  };
}

describe('discovery and keys', () => {
  it('publishes OIDC discovery with the features the samples rely on', async () => {
    const res = await fetch(`${idp.url}/.well-known/openid-configuration`);
    expect(res.status).toBe(200);
    const meta = (await res.json()) as Record<string, unknown>;
    expect(meta).toMatchObject({
      issuer: idp.issuer,
      jwks_uri: `${idp.url}/jwks`,
      authorization_endpoint: `${idp.url}/auth`,
      token_endpoint: `${idp.url}/token`,
      end_session_endpoint: `${idp.url}/session/end`,
      introspection_endpoint: `${idp.url}/token/introspection`,
      revocation_endpoint: `${idp.url}/token/revocation`,
      code_challenge_methods_supported: ['S256'],
      response_types_supported: ['code'],
      authorization_response_iss_parameter_supported: true,
      backchannel_logout_supported: true,
      backchannel_logout_session_supported: true,
    });
    expect(meta.grant_types_supported).toEqual(
      expect.arrayContaining(['authorization_code', 'refresh_token', 'client_credentials']),
    );
    expect(meta.token_endpoint_auth_methods_supported).toEqual(
      expect.arrayContaining(['client_secret_basic', 'private_key_jwt']),
    );
    expect(meta.scopes_supported).toEqual(
      expect.arrayContaining(['openid', 'offline_access', 'profile', 'email']),
    );
  });

  it('JWKS holds public RS256 signing keys only', async () => {
    const { keys } = await jwks();
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      expect(key).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });
      expect(typeof key.kid).toBe('string');
      for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(key).not.toHaveProperty(secret);
    }
  });

  it('GET /health answers 200 {status: "ok"}', async () => {
    const res = await fetch(`${idp.url}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });
});

describe('client credentials', () => {
  it('T3: worker with client_secret_basic gets an at+jwt for the sample API with scope api.reports', async () => {
    const config = await client('worker', 'worker-secret');
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'api.reports' });
    expect(tokens.expires_in).toBe(60);
    expect(tokens.refresh_token).toBeUndefined();
    const { payload, protectedHeader } = await jwtVerify(
      tokens.access_token,
      createLocalJWKSet((await jwks()) as never),
      {
        issuer: idp.issuer,
        audience: SAMPLE_API_AUDIENCE,
        typ: 'at+jwt',
      },
    );
    expect(protectedHeader.alg).toBe('RS256');
    expect(payload).toMatchObject({ client_id: 'worker', sub: 'worker', scope: 'api.reports' });
    expect(typeof payload.jti).toBe('string');
  });

  it('a wrong client secret is 401 invalid_client', async () => {
    const config = await client('worker', 'not-the-secret');
    await expect(oidc.clientCredentialsGrant(config, { scope: 'api.reports' })).rejects.toMatchObject(
      INVALID_CLIENT,
    );
  });

  it('the user scope api is refused to the worker (invalid_scope); unknown scopes are dropped', async () => {
    const config = await client('worker', 'worker-secret');
    await expect(oidc.clientCredentialsGrant(config, { scope: 'api' })).rejects.toMatchObject({
      error: 'invalid_scope',
    });
    const narrower = await oidc.clientCredentialsGrant(config, { scope: 'api.reports admin' });
    expect(narrower.scope).toBe('api.reports');
    expect(decodeJwt(narrower.access_token).scope).toBe('api.reports');
  });

  it('T2: worker-jwt authenticates with private_key_jwt', async () => {
    const jwk = idp.workerPrivateJwk!;
    const key = (await importJWK(jwk, jwk.alg)) as oidc.CryptoKey;
    const config = await oidc.discovery(
      new URL(idp.url),
      'worker-jwt',
      undefined,
      oidc.PrivateKeyJwt({ key, kid: jwk.kid }),
      insecure,
    );
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'api.reports' });
    expect(decodeJwt(tokens.access_token)).toMatchObject({
      client_id: 'worker-jwt',
      aud: SAMPLE_API_AUDIENCE,
    });
  });

  it('T2: private_key_jwt signed with another key is invalid_client', async () => {
    const { generateKeyPair } = await import('jose');
    const { privateKey } = await generateKeyPair('ES256');
    const config = await oidc.discovery(
      new URL(idp.url),
      'worker-jwt',
      undefined,
      oidc.PrivateKeyJwt(privateKey),
      insecure,
    );
    await expect(oidc.clientCredentialsGrant(config, { scope: 'api.reports' })).rejects.toMatchObject({
      error: 'invalid_client',
    });
  });

  it('the bff client may use client credentials too (its own API calls)', async () => {
    const config = await client('bff', 'bff-secret');
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'api.reports' });
    expect(decodeJwt(tokens.access_token)).toMatchObject({ client_id: 'bff', scope: 'api.reports' });
  });
});

describe('refresh tokens', () => {
  it('R3: rotation: the new refresh token works; reusing the old one fails and revokes the grant', async () => {
    const { config, tokens } = await userTokens();
    const first = tokens.refresh_token!;
    const second = await oidc.refreshTokenGrant(config, first);
    expect(second.refresh_token).toBeTruthy();
    expect(second.refresh_token).not.toBe(first);
    expect(decodeJwt(second.access_token)).toMatchObject({
      sub: 'alice',
      scope: 'api',
      aud: SAMPLE_API_AUDIENCE,
    });
    // The ID token from a refresh keeps iss/sub/aud (R6 relies on it).
    expect(second.claims()).toMatchObject({ iss: idp.issuer, sub: 'alice', aud: 'bff' });

    const third = await oidc.refreshTokenGrant(config, second.refresh_token!);
    expect(third.refresh_token).toBeTruthy();

    // Replay of a rotated token: rejected, and the whole grant dies (the newest token too).
    await expect(oidc.refreshTokenGrant(config, first)).rejects.toMatchObject({ error: 'invalid_grant' });
    await expect(oidc.refreshTokenGrant(config, third.refresh_token!)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
  });

  it('without offline_access no refresh token is issued', async () => {
    const { tokens } = await userTokens('openid profile api');
    expect(tokens.refresh_token).toBeUndefined();
  });

  it('rotateRefreshTokens: false keeps the same refresh token', async () => {
    const other = await startIdp({ bffBaseUrl: rp.url, rotateRefreshTokens: false });
    try {
      const config = await oidc.discovery(
        new URL(other.url),
        'bff',
        undefined,
        oidc.ClientSecretBasic('bff-secret'),
        insecure,
      );
      const verifier = oidc.randomPKCECodeVerifier();
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: `${rp.url}/bff/callback`,
        scope: 'openid offline_access api',
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
      });
      const done = await new TestBrowser().login(url, { username: 'bob', password: 'bob' });
      const tokens = await oidc.authorizationCodeGrant(config, new URL(done.url), {
        pkceCodeVerifier: verifier,
      });
      const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
      expect(refreshed.refresh_token ?? tokens.refresh_token).toBe(tokens.refresh_token);
      expect((await oidc.refreshTokenGrant(config, tokens.refresh_token!)).access_token).toBeTruthy();
    } finally {
      await other.close();
    }
  });

  it('O3: revocation of a refresh token makes it unusable', async () => {
    const { config, tokens } = await userTokens();
    await oidc.tokenRevocation(config, tokens.refresh_token!, { token_type_hint: 'refresh_token' });
    await expect(oidc.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
  });
});

describe('counters', () => {
  it('count token-endpoint requests by grant_type, failures included', async () => {
    idp.counters.reset();
    const { config, tokens } = await userTokens();
    await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    await expect(oidc.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toBeTruthy();
    await oidc.clientCredentialsGrant(config, { scope: 'api.reports' });
    expect(idp.counters.token('authorization_code')).toBe(1);
    expect(idp.counters.token('refresh_token')).toBe(2);
    expect(idp.counters.token('client_credentials')).toBe(1);
    expect(idp.counters.token()).toBe(4);
    idp.counters.reset();
    expect(idp.counters.token()).toBe(0);
  });
});

describe('signing keys', () => {
  it('L10: rotateSigningKey signs with a new key and keeps the old one published', async () => {
    const config = await client('worker', 'worker-secret');
    const before = await oidc.clientCredentialsGrant(config, { scope: 'api.reports' });
    const oldKid = decodeProtectedHeader(before.access_token).kid;
    const listenerCalls: string[] = [];
    idp.provider.on('grant.success', () => listenerCalls.push('grant.success'));

    await idp.rotateSigningKey();

    const after = await oidc.clientCredentialsGrant(config, { scope: 'api.reports' });
    const newKid = decodeProtectedHeader(after.access_token).kid;
    expect(newKid).not.toBe(oldKid);
    const { keys } = await jwks();
    expect(keys.map((k) => k.kid)).toEqual([newKid, oldKid]);
    // Both tokens verify against the published set.
    const set = createLocalJWKSet({ keys } as never);
    await jwtVerify(before.access_token, set, { issuer: idp.issuer });
    await jwtVerify(after.access_token, set, { issuer: idp.issuer });
    // Listeners attached before the rotation still fire.
    expect(listenerCalls).toEqual(['grant.success']);
    expect(idp.publicJwks().keys.map((k) => k.kid)).toEqual([newKid, oldKid]);
  });

  it('sign() produces tokens with a genuine signature and exactly the given claims/header', async () => {
    const token = await idp.sign({ iss: idp.issuer, aud: 'bff', sub: 'alice' }, { typ: 'at+jwt' });
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet((await jwks()) as never));
    expect(payload).toEqual({ iss: idp.issuer, aud: 'bff', sub: 'alice' });
    expect(protectedHeader).toMatchObject({
      alg: 'RS256',
      typ: 'at+jwt',
      kid: idp.publicJwks().keys[0]!.kid,
    });
    const unknownKid = await idp.sign({ sub: 'x' }, { kid: 'no-such-key' });
    expect(decodeProtectedHeader(unknownKid).kid).toBe('no-such-key');
  });
});

describe('introspection (opaque access tokens)', () => {
  let opaque: RunningIdp;
  beforeAll(async () => {
    opaque = await startIdp({ bffBaseUrl: rp.url, accessTokenFormat: 'opaque' });
  });
  afterAll(() => opaque?.close());

  it('A9: the api client introspects a token issued for the sample API; revoked → active:false', async () => {
    const worker = await oidc.discovery(
      new URL(opaque.url),
      'worker',
      undefined,
      oidc.ClientSecretBasic('worker-secret'),
      insecure,
    );
    const { access_token } = await oidc.clientCredentialsGrant(worker, { scope: 'api.reports' });
    expect(access_token.split('.')).toHaveLength(1);
    const api = await oidc.discovery(
      new URL(opaque.url),
      'api',
      undefined,
      oidc.ClientSecretBasic('api-secret'),
      insecure,
    );
    const info = await oidc.tokenIntrospection(api, access_token);
    expect(info).toMatchObject({
      active: true,
      client_id: 'worker',
      scope: 'api.reports',
      aud: SAMPLE_API_AUDIENCE,
      iss: opaque.issuer,
      token_type: 'Bearer',
    });
    await oidc.tokenRevocation(worker, access_token);
    expect((await oidc.tokenIntrospection(api, access_token)).active).toBe(false);
  });

  it('A9: a wrong api secret cannot introspect', async () => {
    const api = await oidc.discovery(
      new URL(opaque.url),
      'api',
      undefined,
      oidc.ClientSecretBasic('nope'),
      insecure,
    );
    await expect(oidc.tokenIntrospection(api, 'whatever')).rejects.toMatchObject(INVALID_CLIENT);
  });
});
