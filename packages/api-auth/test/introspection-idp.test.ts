// A9 against the real sample IdP issuing opaque access tokens, introspected with the API's own
// client credentials (client `api`).
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AccessTokenError,
  type AccessTokenValidatorOptions,
  createAccessTokenValidator,
} from '../src/index.js';
import { type IdpFixture, startIdpFixture } from './idp-tokens.js';

const SAMPLE_API_AUDIENCE = 'urn:gatehouse:sample-api';
let fx: IdpFixture;
let introspections = 0;

const make = (options: Partial<AccessTokenValidatorOptions> = {}) =>
  createAccessTokenValidator({
    issuer: fx.idp.issuer,
    audience: SAMPLE_API_AUDIENCE,
    introspection: { clientId: 'api', clientSecret: 'api-secret' },
    timeout: 1,
    fetch: (input, init) => {
      if (String(input).endsWith('/token/introspection')) introspections++;
      return fetch(input, init);
    },
    ...options,
  });

async function rejection(promise: Promise<unknown>): Promise<AccessTokenError> {
  try {
    await promise;
  } catch (error) {
    return error as AccessTokenError;
  }
  throw new Error('expected a rejection');
}

beforeAll(async () => {
  fx = await startIdpFixture({ accessTokenFormat: 'opaque' });
}, 30_000);
afterAll(async () => {
  await fx?.close();
});

describe('A9: opaque tokens from the sample IdP', () => {
  it('A9: an opaque user token is introspected: active, kind user, scope api', async () => {
    const { access_token } = await fx.userTokens('bob');
    expect(access_token.split('.')).toHaveLength(1);
    const auth = await make().validate(access_token);
    expect(auth).toMatchObject({ kind: 'user', source: 'introspection', scopes: ['api'] });
    expect(auth.claims).toMatchObject({ sub: 'bob', client_id: 'bff', iss: fx.idp.issuer });
  });

  it('A9: an opaque client-credentials token is kind client', async () => {
    const auth = await make().validate(await fx.clientToken());
    expect(auth).toMatchObject({ kind: 'client', scopes: ['api.reports'], claims: { client_id: 'worker' } });
  });

  it('A9: an active result is reused from the cache', async () => {
    const validator = make();
    const token = await fx.clientToken();
    const before = introspections;
    await validator.validate(token);
    await validator.validate(token);
    expect(introspections - before).toBe(1);
  });

  it('A9: a revoked token is active:false → 401 invalid_token', async () => {
    const token = await fx.clientToken();
    const worker = await oidc.discovery(
      new URL(fx.idp.url),
      'worker',
      undefined,
      oidc.ClientSecretBasic('worker-secret'),
      { execute: [oidc.allowInsecureRequests] },
    );
    await oidc.tokenRevocation(worker, token, { token_type_hint: 'access_token' });
    const error = await rejection(make().validate(token));
    expect(error.status).toBe(401);
    expect(error.description).toMatch(/not active/);
  });

  it('A9: a token the IdP never issued → 401 invalid_token', async () => {
    const error = await rejection(make().validate('never-issued-opaque-token'));
    expect(error.code).toBe('ERR_API_AUTH_INVALID_TOKEN');
  });

  it('A9: wrong introspection credentials (IdP answers 401) → 503, never a pass', async () => {
    const error = await rejection(
      make({ introspection: { clientId: 'api', clientSecret: 'wrong' } }).validate(await fx.clientToken()),
    );
    expect(error.code).toBe('ERR_API_AUTH_INTROSPECTION_UNAVAILABLE');
    expect(error.status).toBe(503);
  });

  it('A9: introspection endpoint down → 503', async () => {
    const error = await rejection(
      make({
        introspection: {
          clientId: 'api',
          clientSecret: 'api-secret',
          endpoint: 'http://127.0.0.1:9/introspect',
        },
      }).validate(await fx.clientToken()),
    );
    expect(error.status).toBe(503);
  });
});
