// Options are validated once, at creation, with TypeErrors that say the fix.
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createTokenManager, type TokenManagerOptions } from '../src/index.js';

const ok = { issuer: 'https://idp.example', clientId: 'w', clientSecret: 's' };
const ecJwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
const { d: _d, ...ecPublicJwk } = ecJwk;
const smallRsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
const create = (options: unknown) => () => createTokenManager(options as TokenManagerOptions);

describe('createTokenManager options', () => {
  it('accepts a minimal client and exposes the client names', () => {
    expect(createTokenManager({ clients: { a: ok, b: ok } }).clients).toEqual(['a', 'b']);
  });

  it.each([
    [{}, /clients must name at least one client/],
    [{ clients: { a: ok }, renewalMarign: 30 }, /unknown option renewalMarign/],
    [{ clients: { a: { ...ok, scopes: 'x' } } }, /unknown option clients\.a\.scopes/],
    [
      { clients: { a: { clientId: 'w', clientSecret: 's' } } },
      /issuer \(for discovery\) or clients\.a\.tokenEndpoint/,
    ],
    [{ clients: { a: { ...ok, issuer: 'http://idp.example' } } }, /plain http on a non-loopback host/],
    [{ clients: { a: { ...ok, clientSecret: undefined } } }, /clientSecret must be a non-empty string/],
    [{ clients: { a: { ...ok, clientAuthentication: 'private_key_jwt' } } }, /privateKey is required/],
    [{ clients: { a: { ...ok, clientAuthentication: 'none' } } }, /clientAuthentication must be one of/],
    [
      { clients: { a: { ...ok, parameters: { grant_type: 'password' } } } },
      /parameters\.grant_type is set by the manager/,
    ],
    [{ clients: { a: { ...ok, resource: 'not a uri' } } }, /absolute URIs without a fragment/],
    [{ clients: { a: ok }, renewalMargin: -1 }, /renewalMargin must be a number of seconds >= 0/],
    [{ clients: { a: ok }, retry: { attempts: 0 } }, /retry\.attempts must be an integer from 1 to 10/],
    [
      { clients: { a: ok }, sharedCache: { redis: {}, encryptionSecret: 'x'.repeat(32) } },
      /sharedCache\.redis must be a node-redis/,
    ],
    // T9: the DPoP option is checked at creation, key included.
    [{ clients: { a: { ...ok, dpop: 'ES256' } } }, /clients\.a\.dpop must be \{ generate: 'ES256' \}/],
    [{ clients: { a: { ...ok, dpop: {} } } }, /clients\.a\.dpop needs generate/],
    [{ clients: { a: { ...ok, dpop: { generate: 'HS256' } } } }, /dpop\.generate must be one of ES256/],
    [
      { clients: { a: { ...ok, dpop: { generate: 'ES256', privateKey: ecJwk } } } },
      /either generate or privateKey/,
    ],
    [
      { clients: { a: { ...ok, dpop: { privateKey: ecJwk, algo: 'ES256' } } } },
      /unknown option clients\.a\.dpop\.algo/,
    ],
    [{ clients: { a: { ...ok, dpop: { privateKey: ecPublicJwk } } } }, /dpop\.privateKey is a public JWK/],
    [
      { clients: { a: { ...ok, dpop: { privateKey: 'PEM' } } } },
      /must be a private CryptoKey, a KeyObject or a private JWK/,
    ],
    [
      { clients: { a: { ...ok, dpop: { privateKey: { ...ecJwk, x: 'AAAA' } } } } },
      /dpop\.privateKey is not a valid private JWK/,
    ],
    [
      { clients: { a: { ...ok, dpop: { privateKey: ecJwk, alg: 'RS256' } } } },
      /does not fit the key; use one of ES256/,
    ],
    [
      { clients: { a: { ...ok, dpop: { privateKey: smallRsa } } } },
      /1024-bit RSA key; use at least 2048 bits/,
    ],
    // The private_key_jwt key is imported at creation too, not on the first token request.
    [
      { clients: { a: { issuer: 'https://idp.example', clientId: 'w', privateKey: ecPublicJwk } } },
      /clients\.a\.privateKey is a public JWK/,
    ],
  ])('rejects %j', (options, message) => {
    expect(create(options)).toThrow(TypeError);
    expect(create(options)).toThrow(message);
  });

  it('requires a 32+ character encryption secret for the shared cache: tokens are encrypted at rest', () => {
    const redis = { isReady: true, get: async () => null, set: async () => 'OK', eval: async () => 0 };
    expect(create({ clients: { a: ok }, sharedCache: { redis } })).toThrow(/encryptionSecret is required/);
    expect(create({ clients: { a: ok }, sharedCache: { redis, encryptionSecret: 'short' } })).toThrow(
      /at least 32 characters/,
    );
    expect(
      create({ clients: { a: ok }, sharedCache: { redis, encryptionSecret: 'x'.repeat(32) } }),
    ).not.toThrow();
  });

  it('allows http on loopback without the dangerous switch, elsewhere only with it', () => {
    expect(create({ clients: { a: { ...ok, issuer: 'http://127.0.0.1:4000' } } })).not.toThrow();
    expect(
      create({ clients: { a: { ...ok, issuer: 'http://idp.lab', dangerouslyAllowInsecureHttp: true } } }),
    ).not.toThrow();
  });

  it('rejects an unknown client name at call time with the configured names', async () => {
    await expect(createTokenManager({ clients: { a: ok } }).getAccessToken('b')).rejects.toThrow(
      /unknown client "b"; configured: a/,
    );
  });

  it('T9: dpopKey() is undefined for a Bearer client, the key for a DPoP client, a TypeError for an unknown name', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const tokens = createTokenManager({
      clients: {
        plain: ok,
        ec: { ...ok, dpop: { generate: 'ES384' } },
        rsa: { ...ok, dpop: { privateKey: rsa } },
      },
    });
    expect(tokens.dpopKey('plain')).toBeUndefined();
    expect(tokens.dpopKey('ec')).toMatchObject({ alg: 'ES384', publicJwk: { kty: 'EC', crv: 'P-384' } });
    expect(tokens.dpopKey('ec')!.thumbprint).toMatch(/^[\w-]{43}$/);
    expect(tokens.dpopKey('rsa')!.alg).toBe('PS256');
    expect(() => tokens.dpopKey('nope')).toThrow(/unknown client "nope"/);
  });
});
