// SECURITY D1 (DPoP in the BFF) through the sample host (DPoP on by default) against the real sample
// IdP and the real sample API, which requires DPoP-bound tokens on /api/todos; a recording pass-through
// in front of the API shows what the BFF sent. Nothing is faked here: nonces and the token_type
// downgrade are in dpop-nonce.test.ts.
import { createHash } from 'node:crypto';
import { createBff, createMemoryStore, type SessionStore } from '@gatehouse/bff';
import type { RunningApi } from '@gatehouse/testing';
import { calculateJwkThumbprint, decodeJwt, EmbeddedJWK, type JWK, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSealer } from '../src/lib/crypto.js';
import type { TokenRecord } from '../src/lib/token-record.js';
import { SESSION_SECRET, type Stack, signIn, startStack } from './support-core/stack.js';
import { dpopRoutes, type Front, startApiBehind, startFront } from './support-dpop/front.js';
import { spaFetch } from './support-proxy/bff-host.js';

const sha256 = (value: string) => createHash('sha256').update(value).digest('base64url');

/** The decrypted token record of session `id`. */
async function storedRecord(store: SessionStore, id: string) {
  const sealed = (await store.get(id))?.tokens;
  const plain = sealed && createSealer([SESSION_SECRET], 'tokens').open(sealed, `tokens:${id}`);
  if (!plain) throw new Error('token record unreadable');
  return JSON.parse(plain) as TokenRecord;
}

/** Signs `user` in; returns the browser and the id of the session this sign-in created. */
async function signInTracked(stack: Stack, store: SessionStore, user = 'alice') {
  const match = { iss: stack.idp.issuer, sub: user };
  const before = new Set(await store.find(match));
  const signedIn = await signIn(stack, user);
  const id = (await store.find(match)).find((candidate) => !before.has(candidate));
  if (id === undefined) throw new Error(`no new session of ${user}`);
  return { ...signedIn, id };
}

/** Verifies a proof with the key it embeds; returns its payload and the key's thumbprint. */
async function verifyProof(proof: string | null | undefined) {
  expect(proof).toBeTruthy();
  const { payload, protectedHeader } = await jwtVerify(String(proof), EmbeddedJWK, { typ: 'dpop+jwt' });
  expect(protectedHeader.jwk).not.toHaveProperty('d');
  return { payload, alg: protectedHeader.alg, jkt: await calculateJwkThumbprint(protectedHeader.jwk as JWK) };
}

const claim = (claims: Array<{ type: string; value: unknown }>, type: string) =>
  claims.find((c) => c.type === type)?.value;

describe('D1: DPoP-bound sessions (sample host default) against the real IdP and an API requiring DPoP', () => {
  let stack: Stack;
  let front: Front;
  let api: RunningApi;
  let store: SessionStore;
  /** Requests the BFF sent to the IdP, with their DPoP proof. */
  const toIdp: Array<{ path: string; grant: string | null; proof: string | null }> = [];

  beforeAll(async () => {
    front = await startFront();
    store = createMemoryStore();
    stack = await startStack({
      bff: { diagnostics: true },
      bffOptions: { store, remoteApis: dpopRoutes(front) },
    });
    api = await startApiBehind(front, { issuer: stack.idp.issuer, todosDPoP: 'required' });
    stack.tap.intercept = (url, init) => {
      const body = init?.body instanceof URLSearchParams ? init.body : undefined;
      toIdp.push({
        path: url.pathname,
        grant: body?.get('grant_type') ?? null,
        proof: new Headers(init?.headers).get('dpop'),
      });
      return undefined;
    };
  });
  afterAll(async () => {
    await front?.close();
    await api?.close();
    await stack?.close();
  });

  it('D1: sign-in redeems the code with a proof; the tokens are DPoP-bound to the session key (cnf.jkt at the API = the key thumbprint)', async () => {
    const { browser, id } = await signInTracked(stack, store);
    const record = await storedRecord(store, id);
    // The key lives in the sealed token record, as a private JWK.
    expect(record.dpop).toMatchObject({ kty: 'EC', crv: 'P-256' });
    expect(typeof record.dpop?.d).toBe('string');
    const { d: _d, ...publicJwk } = record.dpop as NonNullable<TokenRecord['dpop']>;
    const jkt = await calculateJwkThumbprint(publicJwk as JWK);

    const redemption = toIdp.find((r) => r.grant === 'authorization_code');
    const atRedemption = await verifyProof(redemption?.proof);
    expect(atRedemption).toMatchObject({ alg: 'ES256', jkt });
    expect(atRedemption.payload).toMatchObject({ htm: 'POST', htu: `${stack.idp.issuer}/token` });
    expect(atRedemption.payload).not.toHaveProperty('ath');
    // UserInfo (a DPoP-bound access token) went with a proof too, bound to that token.
    const userinfo = toIdp.find((r) => r.path === '/me');
    expect((await verifyProof(userinfo?.proof)).payload.ath).toBe(sha256(record.at));

    expect(decodeJwt(record.at).cnf).toEqual({ jkt });
    const whoami = await spaFetch(browser, stack.bff.url, '/api/whoami');
    expect(whoami.status).toBe(200);
    expect(await whoami.json()).toMatchObject({ scheme: 'DPoP', jkt, sub: 'alice' });
    const sent = front.seen.at(-1);
    expect(sent).toMatchObject({ method: 'GET', path: '/api/whoami', scheme: 'DPoP', token: record.at });
    const proof = await verifyProof(sent?.proof);
    expect(proof.jkt).toBe(jkt);
    expect(proof.payload).toMatchObject({
      htm: 'GET',
      htu: `${front.url}/api/whoami`,
      ath: sha256(record.at),
    });
    expect(Math.abs((proof.payload.iat as number) - Date.now() / 1000)).toBeLessThan(5);

    // The learner's view: /bff/user and the diagnostics name the type and the thumbprint.
    const user = (await (await spaFetch(browser, stack.bff.url, '/bff/user')).json()) as Array<{
      type: string;
      value: unknown;
    }>;
    expect(claim(user, 'bff:token_type')).toBe('DPoP');
    expect(claim(user, 'bff:dpop_jkt')).toBe(jkt);
    const diagnostics = (await (await spaFetch(browser, stack.bff.url, '/bff/diagnostics')).json()) as {
      tokens: unknown;
    };
    expect(diagnostics.tokens).toMatchObject({ tokenType: 'DPoP', dpopJkt: jkt });
  });

  it('D1: proxied calls to an API that requires DPoP → 200/201/204 (GET, POST with a body, DELETE), each with a fresh proof', async () => {
    const { browser } = await signIn(stack, 'bob');
    front.seen.length = 0;
    const created = await spaFetch(browser, stack.bff.url, '/api/todos', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'bound' }),
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    const list = await spaFetch(browser, stack.bff.url, '/api/todos?x=1');
    expect(list.status).toBe(200);
    expect(await list.json()).toEqual([expect.objectContaining({ id, title: 'bound' })]);
    expect((await spaFetch(browser, stack.bff.url, `/api/todos/${id}`, { method: 'DELETE' })).status).toBe(
      204,
    );

    expect(front.seen.map((c) => [c.method, c.status, c.scheme])).toEqual([
      ['POST', 201, 'DPoP'],
      ['GET', 200, 'DPoP'],
      ['DELETE', 204, 'DPoP'],
    ]);
    const proofs = await Promise.all(front.seen.map((c) => verifyProof(c.proof)));
    expect(new Set(proofs.map((p) => p.payload.jti)).size).toBe(3);
    expect(new Set(proofs.map((p) => p.jkt)).size).toBe(1);
    // htu is the upstream's URL without the query; htm the method.
    expect(proofs.map((p) => [p.payload.htm, p.payload.htu])).toEqual([
      ['POST', `${front.url}/api/todos`],
      ['GET', `${front.url}/api/todos`],
      ['DELETE', `${front.url}/api/todos/${id}`],
    ]);
  });

  it('D1 R1: a refresh carries a proof and keeps the binding: the new token has the same cnf.jkt and works', async () => {
    const { browser, id: session } = await signInTracked(stack, store, 'bob');
    const before = await storedRecord(store, session);
    const refreshes = toIdp.filter((r) => r.grant === 'refresh_token').length;
    stack.clock.advance(400); // past the access token's lifetime, as the BFF sees it
    try {
      const whoami = await spaFetch(browser, stack.bff.url, '/api/whoami');
      expect(whoami.status).toBe(200);
      const after = await storedRecord(store, session);
      expect(after.at).not.toBe(before.at);
      expect(after.dpop).toEqual(before.dpop);
      const jkt = decodeJwt(before.at).cnf;
      expect(decodeJwt(after.at).cnf).toEqual(jkt);
      expect(await whoami.json()).toMatchObject({ scheme: 'DPoP', ...(jkt as object) });
      const refresh = toIdp.filter((r) => r.grant === 'refresh_token');
      expect(refresh).toHaveLength(refreshes + 1);
      const proof = await verifyProof(refresh.at(-1)?.proof);
      expect(proof.jkt).toBe((jkt as { jkt: string }).jkt);
      expect(proof.payload).toMatchObject({ htm: 'POST', htu: `${stack.idp.issuer}/token` });
      expect(front.seen.at(-1)?.token).toBe(after.at);
    } finally {
      stack.clock.advance(-400);
    }
  });

  it('D1 S3: the private key never reaches /bff/user, the diagnostics, a cookie, a log line or the API', async () => {
    const { browser, result, id } = await signInTracked(stack, store);
    const { d } = (await storedRecord(store, id)).dpop as NonNullable<TokenRecord['dpop']>;
    const seen: string[] = [];
    for (const path of ['/bff/user', '/bff/diagnostics', '/api/whoami', '/api/todos']) {
      const res = await spaFetch(browser, stack.bff.url, path);
      expect(res.status).toBe(200);
      seen.push(JSON.stringify([...res.headers]), await res.text());
    }
    seen.push(JSON.stringify(result.hops), await browser.jar.getCookieString(`${stack.bff.url}/`));
    seen.push(...stack.logger.lines, ...front.seen.map((c) => JSON.stringify(c)));
    expect(d.length).toBeGreaterThan(20);
    expect(seen.join('\n')).not.toContain(d);
  });

  it('D1: dpop: false (BFF_DPOP=false) → Bearer tokens: no key, no proof, no bff:dpop_jkt; the DPoP-only API refuses them', async () => {
    const bearerFront = await startFront();
    const bearerStore = createMemoryStore();
    const bearer = await startStack({
      bff: { dpop: false, diagnostics: true },
      bffOptions: { store: bearerStore, remoteApis: dpopRoutes(bearerFront) },
    });
    const bearerApi = await startApiBehind(bearerFront, { issuer: bearer.idp.issuer, todosDPoP: 'required' });
    try {
      const { browser, id } = await signInTracked(bearer, bearerStore);
      expect((await storedRecord(bearerStore, id)).dpop).toBeUndefined();
      const whoami = await spaFetch(browser, bearer.bff.url, '/api/whoami');
      expect(await whoami.json()).toMatchObject({ scheme: 'Bearer' });
      expect(bearerFront.seen.at(-1)).toMatchObject({ scheme: 'Bearer', proof: undefined });
      // The API of this suite takes only DPoP-bound tokens on /api/todos.
      expect((await spaFetch(browser, bearer.bff.url, '/api/todos')).status).toBe(401);
      const user = (await (await spaFetch(browser, bearer.bff.url, '/bff/user')).json()) as Array<{
        type: string;
      }>;
      expect(user.some((c) => c.type.startsWith('bff:dpop') || c.type === 'bff:token_type')).toBe(false);
      const diagnostics = (await (await spaFetch(browser, bearer.bff.url, '/bff/diagnostics')).json()) as {
        tokens: unknown;
      };
      expect(diagnostics.tokens).toMatchObject({ tokenType: 'Bearer', dpopJkt: null });
    } finally {
      await bearerFront.close();
      await bearerApi.close();
      await bearer.close();
    }
  });

  it('D1: an Ed25519 session key works end to end', async () => {
    const edFront = await startFront();
    const ed = await startStack({
      bffOptions: { dpop: { alg: 'Ed25519' }, remoteApis: dpopRoutes(edFront) },
    });
    const edApi = await startApiBehind(edFront, { issuer: ed.idp.issuer, todosDPoP: 'required' });
    try {
      const { browser } = await signIn(ed);
      expect((await spaFetch(browser, ed.bff.url, '/api/todos')).status).toBe(200);
      expect((await verifyProof(edFront.seen.at(-1)?.proof)).alg).toBe('Ed25519');
    } finally {
      await edFront.close();
      await edApi.close();
      await ed.close();
    }
  });

  it('D1: bad dpop options fail at creation with the fix; an algorithm the OP does not list fails discovery', async () => {
    const base = {
      issuer: stack.idp.issuer,
      clientId: 'bff',
      clientSecret: 'bff-secret',
      baseUrl: stack.bff.url,
      sessionSecret: SESSION_SECRET,
    };
    expect(() => createBff({ ...base, dpop: 'yes' as never })).toThrow(
      /`dpop` must be true, false or \{ alg \}/,
    );
    expect(() => createBff({ ...base, dpop: { alg: 'RS256' as never } })).toThrow(
      /`dpop.alg` must be one of ES256, ES384, Ed25519/,
    );
    expect(() => createBff({ ...base, dpop: { algorithm: 'ES256' } as never })).toThrow(
      /unknown option `dpop.algorithm`/,
    );
    // The sample IdP lists ES256, Ed25519 and EdDSA.
    const es384 = createBff({ ...base, dpop: { alg: 'ES384' } });
    await expect(es384.ready()).rejects.toMatchObject({
      code: 'ERR_BFF_CONFIGURATION',
      message: expect.stringMatching(/dpop_signing_alg_values_supported/),
    });
    await es384.close();
  });
});
