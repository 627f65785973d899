// Options are validated once, at creation, with TypeErrors that say the fix.
import { describe, expect, it } from 'vitest';
import { createTokenManager, type TokenManagerOptions } from '../src/index.js';

const ok = { issuer: 'https://idp.example', clientId: 'w', clientSecret: 's' };
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
});
