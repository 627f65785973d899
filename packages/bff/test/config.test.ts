// Options are validated once; every mistake is a TypeError that says what to set.
import { type BffOptions, createBff } from '@gatehouse/bff';
import { describe, expect, it } from 'vitest';

const valid: BffOptions = {
  issuer: 'https://idp.example',
  clientId: 'bff',
  clientSecret: 'secret',
  baseUrl: 'https://app.example',
  sessionSecret: 'a'.repeat(32),
};

describe('createBff options', () => {
  it('accepts a minimal valid configuration and freezes it', async () => {
    const bff = createBff(valid);
    expect(Object.isFrozen(bff.config)).toBe(true);
    expect(bff.config.scope).toBe('openid profile offline_access');
    expect(bff.config.redirectUri).toBe('https://app.example/bff/callback');
    expect(bff.config.cookieName).toBe('__Host-bff');
    expect(bff.config.refreshMargin).toBe(60);
    await bff.close();
  });

  it('appends API scopes to the defaults', async () => {
    const bff = createBff({ ...valid, apiScopes: ['api', 'openid'] });
    expect(bff.config.scope).toBe('openid profile offline_access api');
    await bff.close();
  });

  it.each<[string, Partial<BffOptions> & Record<string, unknown>, RegExp]>([
    ['L1 response_type token', { responseType: 'token' }, /responseType.*"code"/],
    ['missing issuer', { issuer: undefined }, /`issuer` is required/],
    ['http issuer off loopback', { issuer: 'http://idp.example' }, /issuer.*https/],
    ['missing client auth', { clientSecret: undefined }, /clientSecret/],
    [
      'both secret and key',
      { clientPrivateKey: { kty: 'EC' } },
      /either `clientSecret` or `clientPrivateKey`/,
    ],
    ['short session secret', { sessionSecret: 'short' }, /at least 32 characters/],
    ['empty secret list', { sessionSecret: [] }, /sessionSecret/],
    ['http base URL off loopback', { baseUrl: 'http://app.example' }, /baseUrl.*https/],
    ['base URL with a path', { baseUrl: 'https://app.example/app' }, /without a path/],
    ['cookie without __Host-', { cookieName: 'sid' }, /__Host-/],
    ['idle > absolute', { idleTimeout: 7200, absoluteTimeout: 3600 }, /absoluteTimeout/],
    ['negative margin', { refreshMargin: -1 }, /refreshMargin/],
    ['scopes without openid', { scopes: ['profile'] }, /openid/],
    ['bad scope token', { apiScopes: ['a b'] }, /scope/],
    ['typo in an option', { refreshMargn: 30 }, /unknown option `refreshMargn`/],
    ['non-local errorPath', { errorPath: 'https://evil.example' }, /errorPath/],
  ])('%s → TypeError', (_name, patch, message) => {
    expect(() => createBff({ ...valid, ...patch } as BffOptions)).toThrow(TypeError);
    expect(() => createBff({ ...valid, ...patch } as BffOptions)).toThrow(message);
  });

  it('the in-memory store warns when NODE_ENV=production', async () => {
    const warnings: string[] = [];
    const logger = {
      debug() {},
      info() {},
      error() {},
      warn: (_o: object, msg?: string) => void warnings.push(msg ?? ''),
    };
    const previous = process.env.NODE_ENV;
    process.env.NODE_ENV = 'production';
    try {
      const bff = createBff({ ...valid, logger });
      await bff.close();
    } finally {
      process.env.NODE_ENV = previous;
    }
    expect(warnings.some((w) => w.includes('in-memory session store in production'))).toBe(true);
  });

  it('loopback http base URLs and issuers are accepted (browsers treat them as secure contexts)', async () => {
    const bff = createBff({ ...valid, issuer: 'http://127.0.0.1:4000', baseUrl: 'http://localhost:3000' });
    expect(bff.config.loopbackHttp).toBe(true);
    await bff.close();
  });
});
