// A10: DPoP-bound access tokens (RFC 9449) against the real sample IdP. oidc-provider binds a token
// to the key of the DPoP proof sent with the token request (`cnf.jkt`); the proofs for the API are
// made here with jose, so each check of RFC 9449 §4.3 can be broken one at a time. The API is a real
// Express app on loopback.
import { randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type RunningIdp, startIdp } from '@gatehouse/testing';
import express from 'express';
import { base64url, calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AccessTokenAuth,
  type AccessTokenValidator,
  createAccessTokenValidator,
  type DPoPReplayStore,
  requireAccessToken,
  requireScope,
} from '../src/index.js';
import { accessTokenHash } from '../src/lib/dpop.js';

const AUDIENCE = 'urn:gatehouse:sample-api';
const NONCE_SECRET = 'a-test-only-nonce-secret-of-32-characters!';
type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;

let idp: RunningIdp;
let server: Server;
let url: string;
let keyA: KeyPair;
let keyB: KeyPair;
let jktA: string;
/** Client-credentials token bound to keyA (cnf.jkt = jktA). */
let bound: string;
/** Client-credentials token without DPoP (no cnf). */
let unbound: string;
let validator: AccessTokenValidator;
/** Added to Date.now() by the nonce route's validator, to age nonces without waiting. */
let skewMs = 0;
/** What the replay store of the /flaky route does. */
let flakyMode: 'ok' | 'fail' | 'hang' = 'ok';

const now = () => Math.floor(Date.now() / 1000);

async function workerClient(issuerUrl: string): Promise<oidc.Configuration> {
  return oidc.discovery(new URL(issuerUrl), 'worker', undefined, oidc.ClientSecretBasic('worker-secret'), {
    execute: [oidc.allowInsecureRequests],
  });
}

interface ProofOptions {
  key?: KeyPair;
  htm?: string;
  htu?: string;
  iat?: number;
  jti?: string;
  /** null leaves `ath` out. */
  ath?: string | null;
  nonce?: string;
  typ?: string;
  jwk?: JWK;
  token?: string;
}

/** A DPoP proof for `GET <url><path>` with the bound token, unless told otherwise. */
async function proof(path: string, options: ProofOptions = {}): Promise<string> {
  const key = options.key ?? keyA;
  const jwk = options.jwk ?? (await exportJWK(key.publicKey));
  const payload: Record<string, unknown> = {
    htm: options.htm ?? 'GET',
    htu: options.htu ?? `${url}${path}`,
    iat: options.iat ?? now(),
    jti: options.jti ?? randomUUID(),
    ath: options.ath === undefined ? accessTokenHash(options.token ?? bound) : options.ath,
    nonce: options.nonce,
  };
  for (const [name, value] of Object.entries(payload))
    if (value === undefined || value === null) delete payload[name];
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'ES256', typ: options.typ ?? 'dpop+jwt', jwk })
    .sign(key.privateKey);
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
  challenge: string | null;
  nonce: string | null;
}

/** Calls the test API. `dpop` may be several values: each is sent as its own header line. */
function call(
  path: string,
  options: {
    token?: string;
    scheme?: string;
    dpop?: string | string[];
    method?: string;
    headers?: string[];
  } = {},
): Promise<Answer> {
  const raw: string[] = [...(options.headers ?? [])];
  // With raw (array) headers Node adds no Host of its own.
  if (!raw.includes('host')) raw.push('host', new URL(url).host);
  raw.push('authorization', `${options.scheme ?? 'DPoP'} ${options.token ?? bound}`);
  for (const value of [options.dpop ?? []].flat()) raw.push('dpop', value);
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}${path}`, { method: options.method ?? 'GET', headers: raw }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        text += chunk;
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: text ? JSON.parse(text) : {},
          challenge: (res.headers['www-authenticate'] as string | undefined) ?? null,
          nonce: (res.headers['dpop-nonce'] as string | undefined) ?? null,
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

/** A `DPoP …` challenge carrying `error` (and algs); `prefix` is what comes before it. */
function dpopChallenge(error: string, prefix = ''): RegExp {
  return new RegExp(
    `^${prefix}DPoP realm="${AUDIENCE}", error="${error}", error_description="[^"]+", algs="[^"]*ES256[^"]*"$`,
  );
}

beforeAll(async () => {
  idp = await startIdp();
  [keyA, keyB] = await Promise.all([
    generateKeyPair('ES256', { extractable: true }),
    generateKeyPair('ES256', { extractable: true }),
  ]);
  jktA = await calculateJwkThumbprint(await exportJWK(keyA.publicKey));
  const worker = await workerClient(idp.url);
  const boundResponse = await oidc.clientCredentialsGrant(
    worker,
    { scope: 'api.reports' },
    { DPoP: oidc.getDPoPHandle(worker, keyA) },
  );
  expect(boundResponse.token_type.toLowerCase()).toBe('dpop');
  bound = boundResponse.access_token;
  unbound = (await oidc.clientCredentialsGrant(worker, { scope: 'api.reports' })).access_token;

  // The URL is known only once the server listens, and the validator needs it: listen first.
  server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  validator = createAccessTokenValidator({
    issuer: idp.issuer,
    audience: AUDIENCE,
    dpop: { publicUrl: url },
  });
  const nonceValidator = createAccessTokenValidator({
    issuer: idp.issuer,
    audience: AUDIENCE,
    clock: () => Date.now() + skewMs,
    dpop: { publicUrl: url, nonce: { secret: NONCE_SECRET, lifetime: 60 } },
  });
  const flakyStore: DPoPReplayStore = {
    claimOnce: () =>
      flakyMode === 'fail'
        ? Promise.reject(new Error('ECONNRESET'))
        : flakyMode === 'hang'
          ? new Promise<boolean>(() => {})
          : Promise.resolve(true),
  };
  const flakyValidator = createAccessTokenValidator({
    issuer: idp.issuer,
    audience: AUDIENCE,
    timeout: 0.5,
    dpop: { publicUrl: url, replayStore: flakyStore },
  });

  const app = express();
  const show = (req: express.Request, res: express.Response) => {
    res.json(req.auth as AccessTokenAuth);
  };
  app.get('/required', requireAccessToken(validator, { dpop: 'required' }), show);
  app.all('/allowed', requireAccessToken(validator), show);
  app.get('/disabled', requireAccessToken(validator, { dpop: 'disabled' }), show);
  app.get('/nonce', requireAccessToken(nonceValidator, { dpop: 'required' }), show);
  app.get('/flaky', requireAccessToken(flakyValidator, { dpop: 'required' }), show);
  app.get(
    '/scoped',
    requireAccessToken(validator, { dpop: 'required' }),
    requireScope('api.reports', 'admin'),
    show,
  );
  const mounted = express.Router();
  mounted.get('/x', requireAccessToken(validator), show);
  app.use('/mounted', mounted);
  server.on('request', app);
}, 60_000);

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await idp?.close();
});

describe('A10: a valid DPoP proof', () => {
  it('A10: the IdP bound the token to the proof key (cnf.jkt), and a valid proof → 200 with auth.dpop.jkt', async () => {
    const claims = JSON.parse(Buffer.from(bound.split('.')[1] as string, 'base64url').toString());
    expect(claims.cnf).toEqual({ jkt: jktA });
    const res = await call('/required', { dpop: await proof('/required') });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ kind: 'client', source: 'jwt', dpop: { jkt: jktA } });
    expect(res.nonce).toBeNull();
  });

  it('A10: the allowed route takes DPoP too; the scheme name is case-insensitive', async () => {
    expect((await call('/allowed', { dpop: await proof('/allowed') })).status).toBe(200);
    expect((await call('/allowed', { scheme: 'dpop', dpop: await proof('/allowed') })).status).toBe(200);
  });

  it('A10: htu is compared without query and after URL normalization; POST needs htm POST', async () => {
    const htu = `${url.replace('http://', 'HTTP://')}/allowed?ignored=1`;
    expect((await call('/allowed?x=1', { dpop: await proof('/allowed', { htu }) })).status).toBe(200);
    expect(
      (await call('/allowed', { method: 'POST', dpop: await proof('/allowed', { htm: 'POST' }) })).status,
    ).toBe(200);
  });

  it('A10: behind a router, htu is the full path (req.originalUrl), not the router-relative one', async () => {
    expect((await call('/mounted/x', { dpop: await proof('/mounted/x') })).status).toBe(200);
    const relative = await call('/mounted/x', { dpop: await proof('/x') });
    expect(relative.status).toBe(401);
  });
});

describe('A10: each check of RFC 9449 §4.3 → 401 invalid_dpop_proof with a DPoP challenge', () => {
  const refused = async (
    res: Answer | Promise<Answer>,
    description: RegExp,
    error = 'invalid_dpop_proof',
  ) => {
    const answer = await res;
    expect(answer.status).toBe(401);
    expect(answer.challenge).toMatch(dpopChallenge(error));
    expect(answer.body.error).toBe(error);
    expect(answer.body.error_description).toMatch(description);
    expect(JSON.stringify(answer.body)).not.toContain(bound);
  };

  it('A10: a replayed proof (same jti) → 401 the second time', async () => {
    const once = await proof('/required');
    expect((await call('/required', { dpop: once })).status).toBe(200);
    await refused(call('/required', { dpop: once }), /already used/);
  });

  it('A10: the same proof sent 6 times at once passes exactly once', async () => {
    const once = await proof('/required');
    const answers = await Promise.all(Array.from({ length: 6 }, () => call('/required', { dpop: once })));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
    expect(answers.filter((a) => a.status === 401)).toHaveLength(5);
  });

  it('A10: wrong htu: another path, another host, another scheme, another port', async () => {
    const port = new URL(url).port;
    await refused(call('/required', { dpop: await proof('/required', { htu: `${url}/allowed` }) }), /htu/);
    await refused(
      call('/required', { dpop: await proof('/required', { htu: 'http://evil.example/required' }) }),
      /htu/,
    );
    await refused(
      call('/required', { dpop: await proof('/required', { htu: `https://127.0.0.1:${port}/required` }) }),
      /htu/,
    );
    await refused(
      call('/required', { dpop: await proof('/required', { htu: 'http://127.0.0.1:1/required' }) }),
      /htu/,
    );
  });

  it('A10: htu comes from configuration: a proof for a spoofed Host / X-Forwarded-Host is refused', async () => {
    const spoofed = await proof('/required', { htu: 'https://api.attacker.example/required' });
    await refused(
      call('/required', {
        dpop: spoofed,
        headers: [
          'host',
          'api.attacker.example',
          'x-forwarded-host',
          'api.attacker.example',
          'x-forwarded-proto',
          'https',
        ],
      }),
      /htu/,
    );
  });

  it('A10: wrong htm → 401', async () => {
    await refused(call('/required', { dpop: await proof('/required', { htm: 'POST' }) }), /htm/);
    await refused(call('/required', { dpop: await proof('/required', { htm: 'get' }) }), /htm/);
  });

  it('A10: a stale iat (older than proofLifetime + tolerance) and a future iat → 401', async () => {
    await refused(call('/required', { dpop: await proof('/required', { iat: now() - 120 }) }), /too old/);
    await refused(call('/required', { dpop: await proof('/required', { iat: now() + 60 }) }), /future/);
  });

  it('A10: missing ath, or ath of another token → 401', async () => {
    await refused(call('/required', { dpop: await proof('/required', { ath: null }) }), /lacks ath/);
    await refused(
      call('/required', { dpop: await proof('/required', { token: unbound }) }),
      /ath does not match/,
    );
    await refused(
      call('/required', { dpop: await proof('/required', { ath: base64url.encode('not the hash') }) }),
      /ath/,
    );
  });

  it("A10: a proof made with another key than the token's → 401 invalid_token (cnf.jkt mismatch)", async () => {
    const res = await call('/required', { dpop: await proof('/required', { key: keyB }) });
    await refused(res, /cnf\.jkt/, 'invalid_token');
  });

  it("A10: a proof with the token key's jwk header but signed by another key → 401 (also once that header is known)", async () => {
    expect((await call('/required', { dpop: await proof('/required') })).status).toBe(200);
    const jwkA = await exportJWK(keyA.publicKey);
    const forged = await proof('/required', { key: keyB, jwk: jwkA });
    expect(forged.split('.')[0]).toBe((await proof('/required')).split('.')[0]);
    await refused(call('/required', { dpop: forged }), /signature/);
  });

  it('A10: a jwk header holding the private key (d) → 401, even though the signature verifies', async () => {
    const privateJwk = await exportJWK(keyA.privateKey);
    expect(privateJwk.d).toBeDefined();
    await refused(call('/required', { dpop: await proof('/required', { jwk: privateJwk }) }), /private/);
  });

  it('A10: a symmetric alg (HS256) and alg none → 401', async () => {
    const secret = new Uint8Array(32).fill(7);
    const jwk = await exportJWK(keyA.publicKey);
    const claims = {
      htm: 'GET',
      htu: `${url}/required`,
      iat: now(),
      jti: randomUUID(),
      ath: accessTokenHash(bound),
    };
    const hs256 = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk })
      .sign(secret);
    await refused(call('/required', { dpop: hs256 }), /alg is not allowed/);
    const none = `${base64url.encode(JSON.stringify({ alg: 'none', typ: 'dpop+jwt', jwk }))}.${base64url.encode(JSON.stringify(claims))}.`;
    await refused(call('/required', { dpop: none }), /alg is not allowed/);
  });

  it('A10: typ other than dpop+jwt → 401', async () => {
    await refused(call('/required', { dpop: await proof('/required', { typ: 'JWT' }) }), /typ/);
    await refused(call('/required', { dpop: await proof('/required', { typ: 'at+jwt' }) }), /typ/);
  });

  it('A10: two DPoP headers (separate lines or comma-joined) → 401, even if both are valid', async () => {
    const [a, b] = [await proof('/required'), await proof('/required')];
    await refused(call('/required', { dpop: [a, b] }), /exactly one/);
    await refused(call('/required', { dpop: `${a}, ${b}` }), /exactly one/);
  });

  it('A1/A10: the DPoP scheme plus ?access_token= → 400 invalid_request (more than one method)', async () => {
    const res = await call(`/required?access_token=${unbound}`, { dpop: await proof('/required') });
    expect(res.status).toBe(400);
    expect(res.challenge).toMatch(/^DPoP realm="[^"]+", error="invalid_request"/);
    expect(JSON.stringify(res.body)).not.toContain(unbound);
  });

  it('A10: the DPoP scheme without a DPoP header, or with garbage in it → 401', async () => {
    await refused(call('/required', {}), /needs a DPoP proof/);
    await refused(call('/required', { dpop: 'not-a-jwt' }), /malformed/);
  });

  it('A10: a valid proof with a token that is not DPoP-bound → 401 invalid_token', async () => {
    const res = await call('/required', {
      token: unbound,
      dpop: await proof('/required', { token: unbound }),
    });
    await refused(res, /not bound to a DPoP key/, 'invalid_token');
  });

  it('A10: a valid proof with a forged token → 401 invalid_token (the token is still checked)', async () => {
    const [h, p] = bound.split('.');
    const forged = `${h}.${p}.${base64url.encode(new Uint8Array(64))}`;
    const res = await call('/required', { token: forged, dpop: await proof('/required', { token: forged }) });
    await refused(res, /signature/, 'invalid_token');
  });
});

describe('A10: Bearer and DPoP on one API (RFC 9449 §7.2)', () => {
  it('A10: a DPoP-bound token sent as Bearer → 401 invalid_token on the allowed and disabled routes', async () => {
    const allowed = await call('/allowed', { scheme: 'Bearer' });
    expect(allowed.status).toBe(401);
    expect(allowed.challenge).toMatch(
      new RegExp(
        `^Bearer realm="${AUDIENCE}", error="invalid_token", error_description="[^"]*DPoP scheme[^"]*", DPoP realm="${AUDIENCE}", algs="[^"]+"$`,
      ),
    );
    const disabled = await call('/disabled', { scheme: 'Bearer' });
    expect(disabled.status).toBe(401);
    expect(disabled.challenge).toMatch(
      /^Bearer realm="[^"]+", error="invalid_token", error_description="[^"]+"$/,
    );
  });

  it('A10: a DPoP-bound token sent as Bearer with a valid proof alongside is still refused', async () => {
    const res = await call('/allowed', { scheme: 'Bearer', dpop: await proof('/allowed') });
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_token');
  });

  it('A10: any Bearer token on a DPoP-required route → 401 with a bare DPoP challenge (no Bearer offered)', async () => {
    for (const token of [bound, unbound]) {
      const res = await call('/required', { scheme: 'Bearer', token });
      expect(res.status).toBe(401);
      expect(res.challenge).toMatch(new RegExp(`^DPoP realm="${AUDIENCE}", algs="[^"]+"$`));
    }
  });

  it('A10: an unbound token as Bearer still works where DPoP is allowed', async () => {
    const res = await call('/allowed', { scheme: 'Bearer', token: unbound });
    expect(res.status).toBe(200);
    expect(res.body.dpop).toBeUndefined();
  });

  it('A10: the DPoP scheme on a Bearer-only route counts as no credentials (bare Bearer challenge)', async () => {
    const res = await call('/disabled', { dpop: await proof('/disabled') });
    expect(res.status).toBe(401);
    expect(res.challenge).toBe(`Bearer realm="${AUDIENCE}"`);
  });

  it('A10: no credentials where both are accepted → both challenges, no error, DPoP with algs', async () => {
    const res = await fetch(`${url}/allowed`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(
      new RegExp(`^Bearer realm="${AUDIENCE}", DPoP realm="${AUDIENCE}", algs="[^"]*ES256[^"]*"$`),
    );
  });

  it('A10/A6: a missing scope after DPoP → 403 insufficient_scope on the DPoP challenge', async () => {
    const res = await call('/scoped', { dpop: await proof('/scoped') });
    expect(res.status).toBe(403);
    expect(res.challenge).toMatch(
      /^DPoP realm="[^"]+", error="insufficient_scope", error_description="[^"]+", scope="api.reports admin", algs="[^"]+"$/,
    );
  });
});

describe('A10: server nonces (RFC 9449 §9)', () => {
  it('A10: no nonce → 401 use_dpop_nonce with DPoP-Nonce; the retry with it → 200 (and a nonce again)', async () => {
    const first = await call('/nonce', { dpop: await proof('/nonce') });
    expect(first.status).toBe(401);
    expect(first.challenge).toMatch(dpopChallenge('use_dpop_nonce'));
    expect(first.nonce).toMatch(/^[0-9a-z]+\.[A-Za-z0-9_-]+$/);
    const second = await call('/nonce', { dpop: await proof('/nonce', { nonce: first.nonce as string }) });
    expect(second.status).toBe(200);
    expect(second.nonce).toBe(first.nonce);
  });

  it('A10: a forged nonce, or one from two windows ago, → use_dpop_nonce with a fresh one', async () => {
    const issued = (await call('/nonce', { dpop: await proof('/nonce') })).nonce as string;
    const forged = await call('/nonce', {
      dpop: await proof('/nonce', { nonce: `${issued.split('.')[0]}.AAAAAAAAAAAAAAAAAAAAAA` }),
    });
    expect(forged.status).toBe(401);
    expect(forged.body.error).toBe('use_dpop_nonce');
    skewMs = 125_000;
    try {
      const late = Math.floor((Date.now() + skewMs) / 1000);
      const stale = await call('/nonce', { dpop: await proof('/nonce', { nonce: issued, iat: late }) });
      expect(stale.status).toBe(401);
      expect(stale.body.error).toBe('use_dpop_nonce');
      expect(stale.nonce).not.toBe(issued);
      const fresh = await call('/nonce', {
        dpop: await proof('/nonce', { nonce: stale.nonce as string, iat: late }),
      });
      expect(fresh.status).toBe(200);
    } finally {
      skewMs = 0;
    }
  });

  it('A10: a conformant client (openid-client fetchProtectedResource) does the nonce round trip by itself', async () => {
    const worker = await workerClient(idp.url);
    const handle = oidc.getDPoPHandle(worker, keyA);
    const res = await oidc.fetchProtectedResource(
      worker,
      bound,
      new URL(`${url}/nonce`),
      'GET',
      null,
      undefined,
      {
        DPoP: handle,
      },
    );
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ dpop: { jkt: jktA } });
  });
});

describe('A10: the replay cache fails closed', () => {
  it('A10: the replay store rejecting → 503, never 200', async () => {
    flakyMode = 'fail';
    try {
      const res = await call('/flaky', { dpop: await proof('/flaky') });
      expect(res.status).toBe(503);
      expect(res.body.error).toBe('temporarily_unavailable');
    } finally {
      flakyMode = 'ok';
    }
  });

  it('A10: the replay store hanging → 503 within the timeout', async () => {
    flakyMode = 'hang';
    try {
      const started = performance.now();
      const res = await call('/flaky', { dpop: await proof('/flaky') });
      expect(res.status).toBe(503);
      expect(performance.now() - started).toBeLessThan(500 + 400);
    } finally {
      flakyMode = 'ok';
    }
  });
});

describe('A10: options are checked at creation', () => {
  const base = () => ({ issuer: idp.issuer, audience: AUDIENCE });
  it('A10: dpop needs a plain publicUrl; algorithms stay asymmetric; nonce secrets are long enough', () => {
    expect(() => createAccessTokenValidator({ ...base(), dpop: {} as never })).toThrow(
      /dpop.publicUrl.*required/,
    );
    expect(() =>
      createAccessTokenValidator({ ...base(), dpop: { publicUrl: 'http://api.example' } }),
    ).toThrow(/https/);
    expect(() =>
      createAccessTokenValidator({ ...base(), dpop: { publicUrl: 'https://api.example/?x=1' } }),
    ).toThrow(/without query/);
    expect(() =>
      createAccessTokenValidator({
        ...base(),
        dpop: { publicUrl: 'https://api.example', algorithms: ['HS256'] },
      }),
    ).toThrow(/dpop.algorithms.*asymmetric/);
    expect(() =>
      createAccessTokenValidator({
        ...base(),
        dpop: { publicUrl: 'https://api.example', nonce: { secret: 'short' } },
      }),
    ).toThrow(/at least 32 characters/);
    expect(() =>
      createAccessTokenValidator({ ...base(), dpop: { publicUrl: 'https://api.example', proofLifetime: 0 } }),
    ).toThrow(/proofLifetime/);
    expect(() =>
      createAccessTokenValidator({ ...base(), dpop: { publicUrl: 'https://api.example', typo: 1 } as never }),
    ).toThrow(/unknown option "dpop.typo"/);
  });

  it('A10: a route cannot allow or require DPoP on a validator without the dpop option', () => {
    const plain = createAccessTokenValidator(base());
    expect(() => requireAccessToken(plain, { dpop: 'required' })).toThrow(/dpop: \{ publicUrl \}/);
    expect(() => requireAccessToken(validator, { dpop: 'sometimes' as never })).toThrow(
      /required, allowed, disabled/,
    );
  });
});
