// The framework-neutral core against a local authorization server (keys generated here), so every
// crafted bad token and every fault (JWKS down, introspection hanging) is produced on demand.
import { createPublicKey, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { base64url, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AccessTokenError,
  type AccessTokenValidator,
  type AccessTokenValidatorOptions,
  createAccessTokenValidator,
} from '../src/index.js';
import { type LocalAs, startLocalAs } from './local-as.js';

let as: LocalAs;
let validator: AccessTokenValidator;

function make(options: Partial<AccessTokenValidatorOptions> = {}): AccessTokenValidator {
  return createAccessTokenValidator({ issuer: as.issuer, audience: as.audience, ...options });
}

async function rejection(promise: Promise<unknown>): Promise<AccessTokenError> {
  try {
    await promise;
  } catch (error) {
    return error as AccessTokenError;
  }
  throw new Error('expected a rejection');
}

async function expectInvalid(token: string, description?: RegExp, v = validator): Promise<void> {
  const error = await rejection(v.validate(token));
  expect(error.code).toBe('ERR_API_AUTH_INVALID_TOKEN');
  expect(error.status).toBe(401);
  expect(error.error).toBe('invalid_token');
  if (description) expect(error.description).toMatch(description);
  if (token) expect(error.message).not.toContain(token);
}

const now = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  as = await startLocalAs();
  validator = make();
});
afterAll(async () => {
  await as.close();
});

describe('options are checked once, at creation', () => {
  it('A3: refuses alg none and HS* in the allowlist with a TypeError naming the fix', () => {
    expect(() => make({ algorithms: ['RS256', 'none'] })).toThrow(/must not contain "none".*asymmetric/);
    expect(() => make({ algorithms: ['HS256'] })).toThrow(TypeError);
    expect(() => make({ algorithms: ['RS256', 'hs512'] })).toThrow(/must not contain "hs512"/);
    expect(() => make({ algorithms: ['XY1'] })).toThrow(/unsupported "XY1"/);
  });

  it('A5: caps the clock tolerance at 60 seconds', () => {
    expect(() => make({ clockTolerance: 61 })).toThrow(/clockTolerance.*between 0 and 60/);
    expect(make({ clockTolerance: 60 }).config.clockTolerance).toBe(60);
  });

  it('rejects typos, plain-http issuers on non-loopback hosts, and a missing audience', () => {
    expect(() => make({ audiance: 'x' } as never)).toThrow(/unknown option "audiance"/);
    expect(() => createAccessTokenValidator({ issuer: 'http://idp.example', audience: 'a' })).toThrow(
      /https.*dangerouslyAllowInsecureHttp/,
    );
    expect(
      createAccessTokenValidator({
        issuer: 'http://idp.example',
        audience: 'a',
        dangerouslyAllowInsecureHttp: true,
      }).config.issuer,
    ).toBe('http://idp.example');
    expect(() => createAccessTokenValidator({ issuer: as.issuer } as never)).toThrow(/"audience"/);
    expect(() => make({ introspection: { clientId: 'api' } as never })).toThrow(/introspection.clientSecret/);
  });

  it('freezes the resolved config', () => {
    expect(Object.isFrozen(validator.config)).toBe(true);
    expect(validator.config.requiredClaims).toEqual(['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti']);
  });
});

describe('a valid RFC 9068 token', () => {
  it('yields typed claims, parsed scopes and the token kind', async () => {
    const auth = await validator.validate(
      await as.sign({ sub: 'alice', client_id: 'bff', scope: 'openid api' }),
    );
    expect(auth).toMatchObject({ kind: 'user', source: 'jwt', scopes: ['openid', 'api'] });
    expect(auth.claims.sub).toBe('alice');
    expect(auth.claims.client_id).toBe('bff');
  });

  it('A2: accepts typ at+JWT and application/at+jwt (case-insensitive)', async () => {
    await expect(validator.validate(await as.sign({}, { typ: 'at+JWT' }))).resolves.toMatchObject({
      kind: 'user',
    });
    await expect(validator.validate(await as.sign({}, { typ: 'Application/AT+jwt' }))).resolves.toMatchObject(
      {
        kind: 'user',
      },
    );
  });

  it('A4: accepts an aud array that contains this API', async () => {
    await expect(
      validator.validate(await as.sign({ aud: ['other-api', as.audience] })),
    ).resolves.toBeDefined();
  });

  it('A5: accepts a token expired by less than the clock tolerance', async () => {
    await expect(validator.validate(await as.sign({ exp: now() - 2 }))).resolves.toBeDefined();
  });

  it('A7: a token whose sub is its client_id is a client token; the rule is replaceable', async () => {
    const cc = await as.sign({ sub: 'worker', client_id: 'worker', scope: 'api.reports' });
    await expect(validator.validate(cc)).resolves.toMatchObject({ kind: 'client', scopes: ['api.reports'] });
    const custom = make({ tokenKind: (claims) => (claims.gty === 'client_credentials' ? 'client' : 'user') });
    await expect(custom.validate(cc)).resolves.toMatchObject({ kind: 'user' });
    await expect(custom.validate(await as.sign({ gty: 'client_credentials' }))).resolves.toMatchObject({
      kind: 'client',
    });
  });

  it('A3: ignores a jku header and still verifies against the issuer JWKS', async () => {
    await expect(
      validator.validate(await as.sign({}, { jku: 'https://evil.example/jwks' })),
    ).resolves.toBeDefined();
  });
});

describe('A2: token type', () => {
  it('A2: rejects typ JWT (an ID token shape)', async () => {
    await expectInvalid(await as.sign({}, { typ: 'JWT' }), /typ must be at\+jwt/);
  });
  it('A2: rejects a token without typ', async () => {
    await expectInvalid(await as.sign({}, { typ: undefined }), /typ/);
  });
});

describe('A3: algorithms and keys', () => {
  it('A3: rejects alg none', async () => {
    const header = base64url.encode(JSON.stringify({ alg: 'none', typ: 'at+jwt' }));
    const payload = base64url.encode(
      JSON.stringify({
        iss: as.issuer,
        aud: as.audience,
        sub: 'alice',
        client_id: 'bff',
        iat: now(),
        exp: now() + 60,
        jti: 'x',
      }),
    );
    await expectInvalid(`${header}.${payload}.`, /algorithm that is not allowed/);
  });

  it('A3: rejects HS256 signed with the RSA public key as the HMAC secret', async () => {
    const jwks = (await (await fetch(`${as.issuer}/jwks`)).json()) as { keys: Array<Record<string, string>> };
    const jwk = jwks.keys[0]!;
    const pem = createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
    const token = await new SignJWT({
      iss: as.issuer,
      aud: as.audience,
      sub: 'alice',
      client_id: 'bff',
      jti: 'x',
    })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: jwk.kid })
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(String(pem)));
    await expectInvalid(token, /algorithm that is not allowed/);
  });

  it('A3: rejects a token signed with a foreign key under the issuer kid', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const kid = JSON.parse(Buffer.from((await as.sign()).split('.')[0]!, 'base64url').toString()).kid;
    const token = await new SignJWT({
      iss: as.issuer,
      aud: as.audience,
      sub: 'alice',
      client_id: 'bff',
      jti: 'x',
    })
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid })
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
    await expectInvalid(token, /signature is invalid/);
  });

  it('A3: rejects a token signed with an attacker key published at its jku', async () => {
    const { privateKey, publicKey } = await generateKeyPair('RS256');
    const attackerJwk = { ...(await exportJWK(publicKey)), kid: 'attacker', alg: 'RS256' };
    let attackerHits = 0;
    const evil: Server = createServer((_req, res) => {
      attackerHits++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [attackerJwk] }));
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    const jku = `http://127.0.0.1:${(evil.address() as AddressInfo).port}/jwks`;
    try {
      const token = await new SignJWT({
        iss: as.issuer,
        aud: as.audience,
        sub: 'alice',
        client_id: 'bff',
        jti: 'x',
      })
        .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'attacker', jku })
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(privateKey);
      await expectInvalid(token, /no signing key/);
      expect(attackerHits).toBe(0);
    } finally {
      evil.close();
    }
  });

  it('A3: rejects a token carrying its own embedded jwk', async () => {
    const { privateKey, publicKey } = await generateKeyPair('RS256');
    const token = await new SignJWT({
      iss: as.issuer,
      aud: as.audience,
      sub: 'alice',
      client_id: 'bff',
      jti: 'x',
    })
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', jwk: await exportJWK(publicKey) })
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
    await expectInvalid(token, /signature is invalid/);
  });

  it('A3: rejects an algorithm outside a narrowed allowlist', async () => {
    const es = make({ algorithms: ['ES256'] });
    await expectInvalid(await as.sign(), /algorithm that is not allowed/, es);
  });
});

describe('A4/A5: claims', () => {
  it('A4: rejects a wrong iss', async () => {
    await expectInvalid(await as.sign({ iss: 'https://evil.example' }), /another issuer/);
  });
  it('A4: rejects aud ["other-api"]', async () => {
    await expectInvalid(await as.sign({ aud: ['other-api'] }), /not meant for this API/);
  });
  it('A5: rejects a token expired by 5 minutes', async () => {
    await expectInvalid(await as.sign({ iat: now() - 900, exp: now() - 300 }), /expired/);
  });
  it('A5: rejects nbf in the future', async () => {
    await expectInvalid(await as.sign({ nbf: now() + 120 }), /not valid yet/);
  });
  it('A5: rejects iat in the future', async () => {
    await expectInvalid(await as.sign({ iat: now() + 120 }), /issued in the future/);
  });
  for (const claim of ['jti', 'client_id', 'sub', 'iat', 'exp', 'iss', 'aud']) {
    it(`A5: rejects a token without ${claim}`, async () => {
      await expectInvalid(await as.sign({ [claim]: undefined }), new RegExp(`required ${claim} claim`));
    });
  }
  it('A5: rejects mistyped RFC 9068 claims', async () => {
    await expectInvalid(await as.sign({ client_id: 42 }), /client_id/);
    await expectInvalid(await as.sign({ jti: '' }), /jti/);
    await expectInvalid(await as.sign({ scope: ['api'] }), /scope/);
  });
  it('A5: requires configured extra claims', async () => {
    const strict = make({ requiredClaims: ['auth_time'] });
    await expectInvalid(await as.sign(), /required auth_time claim/, strict);
    await expect(strict.validate(await as.sign({ auth_time: now() }))).resolves.toBeDefined();
  });
  it('A10 (downgrade): rejects a DPoP-bound token (cnf) presented as Bearer', async () => {
    await expectInvalid(await as.sign({ cnf: { jkt: 'abc' } }), /sender-constrained/);
  });
  it('rejects garbage, empty and oversized tokens without echoing them', async () => {
    await expectInvalid('a.b.c', /malformed/);
    await expectInvalid('', /empty/);
    await expectInvalid(`${'a'.repeat(9000)}.b.c`, /too long/);
    await expectInvalid('opaque-token-value', /introspection is not configured/);
  });
  it('honours an injected clock', async () => {
    const token = await as.sign({ iat: now(), exp: now() + 60 });
    const future = make({ clock: () => Date.now() + 3600_000 });
    await expectInvalid(token, /expired/, future);
  });
});

describe('A8: JWKS cache, refetch and failure', () => {
  it('A8: 1000 random kids cause at most one JWKS refetch per cooldown', async () => {
    let fetches = 0;
    const counting = make({
      fetch: (input, init) => {
        if (String(input).endsWith('/jwks')) fetches++;
        return fetch(input, init);
      },
    });
    await counting.validate(await as.sign());
    expect(fetches).toBe(1);
    const base = await as.sign();
    const [, payload, signature] = base.split('.');
    const results = await Promise.allSettled(
      Array.from({ length: 1000 }, () => {
        const header = base64url.encode(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid: randomUUID() }));
        return counting.validate(`${header}.${payload}.${signature}`);
      }),
    );
    expect(
      results.every((r) => r.status === 'rejected' && (r.reason as AccessTokenError).status === 401),
    ).toBe(true);
    // The first fetch happened just now, so the 30 s cooldown holds every refetch back.
    expect(fetches).toBe(1);
  });

  it('A8: after the cooldown, an unknown kid causes exactly one refetch for a burst', async () => {
    let fetches = 0;
    const counting = make({
      jwksCooldown: 0.2,
      fetch: (input, init) => {
        if (String(input).endsWith('/jwks')) fetches++;
        return fetch(input, init);
      },
    });
    await counting.validate(await as.sign());
    await new Promise((resolve) => setTimeout(resolve, 250));
    const base = await as.sign();
    const [, payload, signature] = base.split('.');
    await Promise.allSettled(
      Array.from({ length: 200 }, () => {
        const header = base64url.encode(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid: randomUUID() }));
        return counting.validate(`${header}.${payload}.${signature}`);
      }),
    );
    expect(fetches).toBe(2);
  });

  it('A8: a rotated key is accepted after exactly one refetch', async () => {
    let fetches = 0;
    const counting = make({
      jwksCooldown: 0.2,
      fetch: (input, init) => {
        if (String(input).endsWith('/jwks')) fetches++;
        return fetch(input, init);
      },
    });
    await counting.validate(await as.sign());
    expect(fetches).toBe(1);
    await as.rotate();
    await new Promise((resolve) => setTimeout(resolve, 250));
    const fresh = await as.sign();
    await expect(counting.validate(fresh)).resolves.toBeDefined();
    await expect(counting.validate(await as.sign())).resolves.toBeDefined();
    expect(fetches).toBe(2);
  });

  it('A8: a key the issuer withdraws stops working once the cached set expires (jwksCacheMaxAge)', async () => {
    const v = make({ jwksCacheMaxAge: 1 });
    const oldKid = as.currentKid();
    const old = await as.sign();
    // Rotate before the first fetch: key generation is slow on a loaded machine, and the steps
    // below must run well within the 1 s cache lifetime.
    await as.rotate();
    await expect(v.validate(old)).resolves.toBeDefined();
    as.retire(oldKid);
    // Still inside the cache lifetime: the cached set (and the hot-path memo) still has the key.
    await expect(v.validate(old)).resolves.toBeDefined();
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await expectInvalid(old, /no signing key/, v);
    await expect(v.validate(await as.sign())).resolves.toBeDefined();
  });

  it('A8: JWKS endpoint down → 503 keys unavailable, never a pass', async () => {
    const cold = make();
    as.jwksUp = false;
    try {
      const error = await rejection(cold.validate(await as.sign()));
      expect(error.code).toBe('ERR_API_AUTH_KEYS_UNAVAILABLE');
      expect(error.status).toBe(503);
      // Within the backoff a second request fails at once instead of fetching again.
      const before = as.counts.get('/jwks') ?? 0;
      await rejection(cold.validate(await as.sign()));
      expect(as.counts.get('/jwks') ?? 0).toBe(before);
    } finally {
      as.jwksUp = true;
    }
  });

  it('A8: with keys cached, JWKS down still serves known kids and fails closed (503) on unknown ones', async () => {
    const warm = make({ jwksCooldown: 0 });
    await warm.warmUp();
    as.jwksUp = false;
    try {
      await expect(warm.validate(await as.sign())).resolves.toBeDefined();
      await as.rotate();
      const error = await rejection(warm.validate(await as.sign()));
      expect(error.status).toBe(503);
    } finally {
      as.jwksUp = true;
    }
  });

  it('falls back to RFC 8414 metadata when there is no openid-configuration', async () => {
    const paths: string[] = [];
    const rfc8414 = createServer((req, res) => {
      paths.push(req.url ?? '');
      if (req.url === '/.well-known/oauth-authorization-server') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ issuer: as.issuer, jwks_uri: `${as.issuer}/jwks` }));
      } else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => rfc8414.listen(0, '127.0.0.1', resolve));
    const port = (rfc8414.address() as AddressInfo).port;
    try {
      // Point discovery at the RFC 8414-only server by rewriting the metadata URLs in fetch.
      const v = make({
        fetch: (input, init) =>
          fetch(
            String(input).includes('/.well-known/')
              ? String(input).replace(as.issuer, `http://127.0.0.1:${port}`)
              : input,
            init,
          ),
      });
      await expect(v.validate(await as.sign())).resolves.toBeDefined();
      expect(paths).toEqual(['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']);
    } finally {
      rfc8414.close();
    }
  });

  it('A8: the issuer unreachable → 503; a metadata issuer mismatch → 500 config error', async () => {
    const nowhere = createAccessTokenValidator({ issuer: 'http://127.0.0.1:9', audience: 'a', timeout: 1 });
    expect((await rejection(nowhere.validate(await as.sign()))).status).toBe(503);

    const liar = createServer((_req, res) => {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ issuer: 'https://evil.example' }));
    });
    await new Promise<void>((resolve) => liar.listen(0, '127.0.0.1', resolve));
    try {
      const mismatched = createAccessTokenValidator({
        issuer: `http://127.0.0.1:${(liar.address() as AddressInfo).port}`,
        audience: 'a',
      });
      const error = await rejection(mismatched.validate(await as.sign()));
      expect(error.code).toBe('ERR_API_AUTH_CONFIG');
      expect(error.status).toBe(500);
    } finally {
      liar.close();
    }
  });
});

describe('A9: introspection of opaque tokens', () => {
  const clientId = 'api';
  const clientSecret = 'api secret/+';
  const introspecting = (options: Partial<AccessTokenValidatorOptions> = {}) =>
    make({ introspection: { clientId, clientSecret }, timeout: 0.3, ...options });
  const active = (extra: Record<string, unknown> = {}) => ({
    active: true,
    iss: as.issuer,
    aud: as.audience,
    client_id: 'bff',
    sub: 'alice',
    scope: 'api',
    exp: now() + 300,
    iat: now(),
    token_type: 'Bearer',
    ...extra,
  });
  const opaque = (doc: Record<string, unknown>) => {
    const token = randomUUID();
    as.opaque.set(token, doc);
    return token;
  };

  it('A9: an active token passes, authenticated with client_secret_basic (form-encoded)', async () => {
    const auth = await introspecting().validate(opaque(active()));
    expect(auth).toMatchObject({ kind: 'user', source: 'introspection', scopes: ['api'] });
    expect(auth.claims.sub).toBe('alice');
    const expected = Buffer.from('api:api+secret%2F%2B').toString('base64');
    expect(as.lastIntrospectionAuth).toBe(`Basic ${expected}`);
  });

  it('A9: a client token without sub is a client token (sub defaults to client_id)', async () => {
    const auth = await introspecting().validate(opaque(active({ sub: undefined, client_id: 'worker' })));
    expect(auth).toMatchObject({ kind: 'client', claims: { sub: 'worker', client_id: 'worker' } });
  });

  it('A9: active:false → 401 invalid_token', async () => {
    await expectInvalid(opaque({ active: false }), /not active/, introspecting());
    await expectInvalid('never-issued', /not active/, introspecting());
  });

  it('A9: checks aud, exp, iss, token_type and cnf from the response', async () => {
    const v = introspecting();
    await expectInvalid(opaque(active({ aud: 'other-api' })), /aud/, v);
    await expectInvalid(opaque(active({ aud: undefined })), /aud/, v);
    await expectInvalid(opaque(active({ exp: now() - 300 })), /expired/, v);
    await expectInvalid(opaque(active({ iss: 'https://evil.example' })), /another issuer/, v);
    await expectInvalid(opaque(active({ token_type: 'refresh_token' })), /not a Bearer/, v);
    await expectInvalid(opaque(active({ cnf: { jkt: 'x' } })), /sender-constrained/, v);
  });

  for (const mode of ['error', 'hang', 'not-json'] as const) {
    it(`A9: introspection ${mode} → 503, never a pass`, async () => {
      as.introspectionMode = mode;
      try {
        const error = await rejection(introspecting().validate(opaque(active())));
        expect(error.code).toBe('ERR_API_AUTH_INTROSPECTION_UNAVAILABLE');
        expect(error.status).toBe(503);
      } finally {
        as.introspectionMode = 'normal';
      }
    });
  }

  it('A9: caches an active result, but never past the token exp', async () => {
    let clock = Date.now();
    const v = introspecting({
      clock: () => clock,
      introspection: { clientId, clientSecret, cacheMaxAge: 600 },
    });
    const exp = Math.floor(clock / 1000) + 30;
    const token = opaque(active({ exp }));
    const before = as.counts.get('/introspect') ?? 0;
    await v.validate(token);
    await v.validate(token);
    expect((as.counts.get('/introspect') ?? 0) - before).toBe(1);
    clock = exp * 1000 + 1;
    // Past exp (within the clock tolerance) the cached entry is no longer used: the AS is asked again.
    await v.validate(token);
    expect((as.counts.get('/introspect') ?? 0) - before).toBe(2);
    clock = (exp + 10) * 1000;
    // Beyond the tolerance the AS's own (now past) exp rejects it.
    await expectInvalid(token, /expired/, v);
    expect((as.counts.get('/introspect') ?? 0) - before).toBe(3);
  });

  it('A9: caches no longer than cacheMaxAge, and not at all with 0', async () => {
    let clock = Date.now();
    const v = introspecting({
      clock: () => clock,
      introspection: { clientId, clientSecret, cacheMaxAge: 10 },
    });
    const token = opaque(active());
    const before = as.counts.get('/introspect') ?? 0;
    await v.validate(token);
    clock += 11_000;
    await v.validate(token);
    expect((as.counts.get('/introspect') ?? 0) - before).toBe(2);
    const uncached = introspecting({ introspection: { clientId, clientSecret, cacheMaxAge: 0 } });
    await uncached.validate(token);
    await uncached.validate(token);
    expect((as.counts.get('/introspect') ?? 0) - before).toBe(4);
  });

  it('A9: client_secret_post sends the credentials in the body', async () => {
    const v = make({ introspection: { clientId, clientSecret, authMethod: 'client_secret_post' } });
    await expect(v.validate(opaque(active()))).resolves.toBeDefined();
    expect(as.lastIntrospectionAuth).toBeUndefined();
  });

  it('JWTs are still validated locally when introspection is on', async () => {
    const before = as.counts.get('/introspect') ?? 0;
    await expect(introspecting().validate(await as.sign())).resolves.toMatchObject({ source: 'jwt' });
    expect(as.counts.get('/introspect') ?? 0).toBe(before);
  });
});
