// Against the real sample IdP (oidc-provider): user tokens from the code flow, client tokens from
// client credentials, and tokens with genuine signatures but crafted claims via idp.sign().
import { createPublicKey, randomUUID } from 'node:crypto';
import express, { type Express } from 'express';
import { base64url, SignJWT } from 'jose';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AccessTokenError,
  type AccessTokenValidator,
  createAccessTokenValidator,
  requireAccessToken,
  requireClient,
  requireScope,
  requireUser,
} from '../src/index.js';
import { type IdpFixture, startIdpFixture } from './idp-tokens.js';

/** The sample IdP's audience for the sample API (`SAMPLE_API_AUDIENCE` in apps/idp). */
const SAMPLE_API_AUDIENCE = 'urn:gatehouse:sample-api';

let fx: IdpFixture;
let validator: AccessTokenValidator;
let jwksFetches = 0;
let app: Express;
let alice: { access_token: string; id_token: string };
let worker: string;

const now = () => Math.floor(Date.now() / 1000);

/** RFC 9068 claims as the IdP would issue them; override to craft bad ones. */
function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const base: Record<string, unknown> = {
    iss: fx.idp.issuer,
    aud: SAMPLE_API_AUDIENCE,
    sub: 'alice',
    client_id: 'bff',
    iat: now(),
    exp: now() + 300,
    jti: randomUUID(),
    scope: 'api',
    ...overrides,
  };
  for (const [name, value] of Object.entries(base)) if (value === undefined) delete base[name];
  return base;
}

const forge = (
  overrides: Record<string, unknown> = {},
  header: Record<string, unknown> = { typ: 'at+jwt' },
) => fx.idp.sign(claims(overrides), header);

async function rejection(promise: Promise<unknown>): Promise<AccessTokenError> {
  try {
    await promise;
  } catch (error) {
    return error as AccessTokenError;
  }
  throw new Error('expected a rejection');
}

beforeAll(async () => {
  fx = await startIdpFixture();
  validator = createAccessTokenValidator({
    issuer: fx.idp.issuer,
    audience: SAMPLE_API_AUDIENCE,
    jwksCooldown: 0.3,
    fetch: (input, init) => {
      if (String(input).endsWith('/jwks')) jwksFetches++;
      return fetch(input, init);
    },
  });
  alice = await fx.userTokens('alice');
  worker = await fx.clientToken();
  app = express();
  const auth = requireAccessToken(validator);
  app.get('/user', auth, requireUser(), requireScope('api'), (req, res) => {
    res.json({ sub: req.auth?.claims.sub });
  });
  app.get('/client', auth, requireClient(), requireScope('api.reports'), (req, res) => {
    res.json({ client_id: req.auth?.claims.client_id });
  });
}, 30_000);
afterAll(async () => {
  await fx?.close();
});

describe('genuine tokens from the sample IdP', () => {
  it('a user token from the code flow validates as kind user with scope api', async () => {
    const auth = await validator.validate(alice.access_token);
    expect(auth).toMatchObject({ kind: 'user', source: 'jwt', scopes: ['api'] });
    expect(auth.claims).toMatchObject({
      sub: 'alice',
      client_id: 'bff',
      iss: fx.idp.issuer,
      aud: SAMPLE_API_AUDIENCE,
    });
  });

  it('A7: a client-credentials token (sub = client_id) validates as kind client', async () => {
    const auth = await validator.validate(worker);
    expect(auth).toMatchObject({ kind: 'client', scopes: ['api.reports'] });
    expect(auth.claims.sub).toBe('worker');
    expect(auth.claims.client_id).toBe('worker');
  });

  it('A2: the id_token sent as an access token → 401 invalid_token', async () => {
    const error = await rejection(validator.validate(alice.id_token));
    expect(error.status).toBe(401);
    expect(error.error).toBe('invalid_token');
  });

  it('A7: routes enforce the token kind over HTTP (user vs client)', async () => {
    const user = `Bearer ${alice.access_token}`;
    const client = `Bearer ${worker}`;
    expect((await request(app).get('/user').set('authorization', user)).body).toEqual({ sub: 'alice' });
    expect((await request(app).get('/client').set('authorization', client)).body).toEqual({
      client_id: 'worker',
    });
    const wrongUser = await request(app).get('/user').set('authorization', client);
    expect(wrongUser.status).toBe(403);
    expect(wrongUser.headers['www-authenticate']).toMatch(/error="insufficient_scope"/);
    const wrongClient = await request(app).get('/client').set('authorization', user);
    expect(wrongClient.status).toBe(403);
  });
});

describe('crafted tokens with the IdP key (idp.sign)', () => {
  const bad: Array<[string, () => Promise<string>, RegExp]> = [
    ['A2: typ JWT', () => forge({}, { typ: 'JWT' }), /typ/],
    ['A2: no typ', () => forge({}, {}), /typ/],
    ['A4: wrong iss', () => forge({ iss: 'https://evil.example' }), /issuer/],
    ['A4: aud ["other-api"]', () => forge({ aud: ['other-api'] }), /aud/],
    ['A4: aud of the bff client (an ID-token audience)', () => forge({ aud: 'bff' }), /aud/],
    ['A5: expired by 5 minutes', () => forge({ iat: now() - 900, exp: now() - 300 }), /expired/],
    ['A5: nbf in the future', () => forge({ nbf: now() + 300 }), /nbf/],
    ['A5: iat in the future', () => forge({ iat: now() + 300 }), /iat/],
    ['A5: missing jti', () => forge({ jti: undefined }), /required jti claim/],
    ['A5: missing client_id', () => forge({ client_id: undefined }), /required client_id claim/],
    ['A5: missing sub', () => forge({ sub: undefined }), /required sub claim/],
    ['A5: missing exp', () => forge({ exp: undefined }), /required exp claim/],
    ['A3: unknown kid', () => forge({}, { typ: 'at+jwt', kid: randomUUID() }), /no signing key/],
  ];
  for (const [name, make, description] of bad) {
    it(`${name} → 401 invalid_token`, async () => {
      const token = await make();
      const error = await rejection(validator.validate(token));
      expect(error.code).toBe('ERR_API_AUTH_INVALID_TOKEN');
      expect(error.description).toMatch(description);
      const res = await request(app).get('/user').set('authorization', `Bearer ${token}`);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(
        new RegExp(
          `^Bearer realm="${SAMPLE_API_AUDIENCE}", error="invalid_token", error_description="[^"]+"$`,
        ),
      );
      expect(res.text).not.toContain(token);
    });
  }

  it('A2: typ at+JWT and application/at+jwt with the IdP key are accepted', async () => {
    await expect(validator.validate(await forge({}, { typ: 'at+JWT' }))).resolves.toMatchObject({
      kind: 'user',
    });
    await expect(validator.validate(await forge({}, { typ: 'application/at+jwt' }))).resolves.toMatchObject({
      kind: 'user',
    });
  });

  it('A7: a client-credentials token whose sub looks like a user id → 403 on a user route', async () => {
    const token = await forge({ sub: 'bob', client_id: 'bob' });
    const res = await request(app).get('/user').set('authorization', `Bearer ${token}`);
    expect(res.status).toBe(403);
    expect(res.body.error_description).toMatch(/user token/);
  });

  it('A6: a user token without scope api → 403 insufficient_scope, scope="api"', async () => {
    const res = await request(app)
      .get('/user')
      .set('authorization', `Bearer ${await forge({ scope: 'read' })}`);
    expect(res.status).toBe(403);
    expect(res.headers['www-authenticate']).toBe(
      `Bearer realm="${SAMPLE_API_AUDIENCE}", error="insufficient_scope", error_description="the access token lacks a required scope", scope="api"`,
    );
  });

  it('A3: alg none → 401', async () => {
    const header = base64url.encode(JSON.stringify({ alg: 'none', typ: 'at+jwt' }));
    const token = `${header}.${base64url.encode(JSON.stringify(claims()))}.`;
    const res = await request(app).get('/user').set('authorization', `Bearer ${token}`);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/error="invalid_token"/);
  });

  it('A3: HS256 signed with the IdP RSA public key → 401', async () => {
    const jwk = fx.idp.publicJwks().keys[0]!;
    const pem = createPublicKey({ key: jwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
    const token = await new SignJWT(claims())
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: jwk.kid })
      .sign(new TextEncoder().encode(String(pem)));
    const error = await rejection(validator.validate(token));
    expect(error.status).toBe(401);
    expect(error.description).toMatch(/algorithm/);
  });
});

describe('A8: key rotation at the IdP', () => {
  it('A8: 1000 tokens with random kids → no JWKS refetch within the cooldown, all 401', async () => {
    let fetches = 0;
    const v = createAccessTokenValidator({
      issuer: fx.idp.issuer,
      audience: SAMPLE_API_AUDIENCE,
      fetch: (input, init) => {
        if (String(input).endsWith('/jwks')) fetches++;
        return fetch(input, init);
      },
    });
    await v.validate(worker);
    expect(fetches).toBe(1);
    const [, payload, signature] = (await forge()).split('.');
    const results = await Promise.allSettled(
      Array.from({ length: 1000 }, () => {
        const header = base64url.encode(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid: randomUUID() }));
        return v.validate(`${header}.${payload}.${signature}`);
      }),
    );
    expect(
      results.filter((r) => r.status === 'rejected' && (r.reason as AccessTokenError).status === 401),
    ).toHaveLength(1000);
    expect(fetches).toBe(1);
  });

  it('A8: after rotation, new tokens are accepted after exactly one JWKS refetch', async () => {
    await validator.validate(alice.access_token);
    const before = jwksFetches;
    await new Promise((resolve) => setTimeout(resolve, 350)); // past the 0.3 s cooldown
    await fx.idp.rotateSigningKey();
    const fresh = await fx.clientToken();
    await expect(validator.validate(fresh)).resolves.toMatchObject({ kind: 'client' });
    await expect(validator.validate(await fx.clientToken())).resolves.toBeDefined();
    // The previous key is still published, so older tokens keep working.
    await expect(validator.validate(alice.access_token)).resolves.toBeDefined();
    expect(jwksFetches - before).toBe(1);
  });
});
