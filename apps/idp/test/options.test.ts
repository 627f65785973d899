import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startIdp, TestBrowser } from '@gatehouse/testing';
import { describe, expect, it } from 'vitest';
import { defaultClients, type IdpOptions, resolveIdpOptions } from '../src/app.js';
import { startReceiver } from './receiver.js';

const issuer = 'http://127.0.0.1:4999';

describe('createIdp options', () => {
  it.each<[string, unknown, RegExp]>([
    ['a typo in an option name', { issuer, acessTokenTtl: 5 }, /unknown option "acessTokenTtl"/],
    ['an issuer with a path', { issuer: `${issuer}/oidc` }, /origin without path/],
    ['a non-http issuer', { issuer: 'ftp://x' }, /http\(s\) URL/],
    [
      'a TTL in milliseconds by mistake',
      { issuer, accessTokenTtl: 1.5 },
      /in seconds and must be a positive integer/,
    ],
    ['a negative TTL', { issuer, refreshTokenTtl: -1 }, /positive integer/],
    [
      'an empty client secret',
      { issuer, clientSecrets: { bff: '' } },
      /clientSecrets.bff must be a non-empty string/,
    ],
    ['an unknown secret name', { issuer, clientSecrets: { spa: 'x' } }, /unknown clientSecrets.spa/],
    [
      'private keys passed as workerJwks',
      { issuer, workerJwks: { keys: [{ kty: 'EC', d: 'x' }] } },
      /public keys only/,
    ],
    [
      'public keys passed as signingKeys',
      { issuer, signingKeys: { keys: [{ kty: 'RSA', n: 'x', e: 'AQAB' }] } },
      /private keys/,
    ],
    [
      'an extra client reusing a default id',
      { issuer, extraClients: [{ client_id: 'bff' }] },
      /duplicate client_id "bff"/,
    ],
    ['a bad token format', { issuer, accessTokenFormat: 'jwe' }, /'jwt' or 'opaque'/],
    [
      'an unsupported signing alg',
      { issuer, signingAlg: 'HS256' },
      /signingAlg must be one of RS256, ES256, PS256/,
    ],
    ['an empty dataDir', { issuer, dataDir: '' }, /dataDir must be a folder path/],
    ['a dataDir that is not a string', { issuer, dataDir: 42 }, /dataDir must be a folder path/],
  ])('rejects %s with a TypeError that says the fix', (_name, options, message) => {
    expect(() => resolveIdpOptions(options as IdpOptions)).toThrow(TypeError);
    expect(() => resolveIdpOptions(options as IdpOptions)).toThrow(message);
  });

  it('resolves defaults into a frozen config', () => {
    const config = resolveIdpOptions({ issuer: `${issuer}/` });
    expect(config).toMatchObject({
      issuer,
      bffBaseUrl: 'http://localhost:3000',
      clientSecrets: { bff: 'bff-secret', worker: 'worker-secret', api: 'api-secret' },
      accessTokenTtl: 300,
      rotateRefreshTokens: true,
      accessTokenFormat: 'jwt',
    });
    expect(Object.isFrozen(config)).toBe(true);
    expect(config.dataDir).toBeUndefined();
    expect(config.keysDir).toBeUndefined();
  });

  it('dataDir is resolved to an absolute folder and is where signing keys live unless keysDir says otherwise', () => {
    const config = resolveIdpOptions({ issuer, dataDir: 'tmp/idp' });
    expect(config.dataDir).toBe(resolve('tmp/idp'));
    expect(config.keysDir).toBe(resolve('tmp/idp'));
    expect(resolveIdpOptions({ issuer, dataDir: 'tmp/idp', keysDir: '/keys' }).keysDir).toBe('/keys');
  });

  it('registers the bff client with the sample URLs and back-channel logout', () => {
    const [bff] = defaultClients(resolveIdpOptions({ issuer, bffBaseUrl: 'http://localhost:3000' }));
    expect(bff).toMatchObject({
      client_id: 'bff',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      redirect_uris: ['http://localhost:3000/bff/callback'],
      post_logout_redirect_uris: ['http://localhost:3000/', 'http://localhost:3000/bff/signed-out'],
      backchannel_logout_uri: 'http://localhost:3000/bff/backchannel',
      backchannel_logout_session_required: true,
      id_token_signed_response_alg: 'RS256',
    });
  });

  it('never logs passwords or tokens (login failure + success)', async () => {
    const lines: string[] = [];
    const log = (obj: object, msg?: string) => lines.push(JSON.stringify({ ...obj, msg }));
    const rp = await startReceiver();
    const idp = await startIdp({
      bffBaseUrl: rp.url,
      logger: { debug: log, info: log, warn: log, error: log },
    });
    try {
      const browser = new TestBrowser();
      const url = new URL(`${idp.url}/auth`);
      url.search = new URLSearchParams({
        client_id: 'bff',
        response_type: 'code',
        scope: 'openid',
        redirect_uri: `${rp.url}/bff/callback`,
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        code_challenge_method: 'S256',
      }).toString();
      const page = await browser.follow(url);
      const failed = await browser.submitLogin(page, { username: 'alice', password: 'secret-typo-123' });
      expect(failed.status).toBe(401);
      const done = await browser.submitLogin(failed, { username: 'alice', password: 'alice' });
      expect(new URL(done.url).searchParams.get('code')).toBeTruthy();
      const all = lines.join('\n');
      expect(all).toContain('sign-in failed');
      expect(all).toContain('signed in');
      expect(all).not.toContain('secret-typo-123');
      expect(all).not.toMatch(/"password"/);
      expect(all).not.toMatch(/code=|eyJ/);
    } finally {
      await idp.close();
      await rp.close();
    }
  });
});

describe('signingAlg (L17: an OP that does not sign with RS256)', () => {
  it('ES256: publishes an EC key and signs ID tokens, logout tokens and JWT access tokens with ES256', async () => {
    const idp = await startIdp({ signingAlg: 'ES256' });
    try {
      const metadata = (await (await fetch(`${idp.url}/.well-known/openid-configuration`)).json()) as {
        jwks_uri: string;
      };
      const jwks = (await (await fetch(metadata.jwks_uri)).json()) as {
        keys: Array<{ kty: string; alg?: string }>;
      };
      expect(jwks.keys.map((k) => [k.kty, k.alg])).toEqual([['EC', 'ES256']]);
      const bff = defaultClients(resolveIdpOptions({ issuer: idp.url, signingAlg: 'ES256' })).find(
        (c) => c.client_id === 'bff',
      );
      expect(bff?.id_token_signed_response_alg).toBe('ES256');
      const token = await idp.sign({ sub: 'alice' });
      const header = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString()) as {
        alg: string;
      };
      expect(header.alg).toBe('ES256');
    } finally {
      await idp.close();
    }
  });

  it('keys kept in keysDir for another algorithm are refused with the fix, not used to sign wrongly', async () => {
    const keysDir = mkdtempSync(join(tmpdir(), 'idp-keys-'));
    try {
      await (await startIdp({ keysDir, signingAlg: 'ES256' })).close();
      await expect(startIdp({ keysDir })).rejects.toThrow(
        /holds ES256 keys but signingAlg is RS256; use signingAlg ES256, another folder, or delete the file/,
      );
      const again = await startIdp({ keysDir, signingAlg: 'ES256' });
      expect(again.publicJwks().keys.map((k) => k.alg)).toEqual(['ES256']);
      await again.close();
    } finally {
      rmSync(keysDir, { recursive: true, force: true });
    }
  });
});
