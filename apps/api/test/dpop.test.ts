// A10 in the sample API: DPoP-bound tokens from the real sample IdP (user tokens through the code
// flow, worker tokens through client credentials, both with a DPoP proof at the token endpoint).
// /api/reports can require DPoP (API_REQUIRE_DPOP); /api/todos accepts DPoP and Bearer by default.
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type RunningApi, type RunningIdp, startApi, startIdp, TestBrowser } from '@gatehouse/testing';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;
const insecure = { execute: [oidc.allowInsecureRequests] };

let receiver: Server;
let idp: RunningIdp;
let api: RunningApi;
let key: KeyPair;
let jkt: string;
let worker: oidc.Configuration;
let boundWorker: string;
let plainWorker: string;
let boundAlice: string;
let plainAlice: string;

async function userToken(username: 'alice' | 'bob', dpop?: KeyPair): Promise<string> {
  const bff = await oidc.discovery(
    new URL(idp.url),
    'bff',
    undefined,
    oidc.ClientSecretBasic('bff-secret'),
    insecure,
  );
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const redirect = `http://localhost:${(receiver.address() as AddressInfo).port}/bff/callback`;
  const url = oidc.buildAuthorizationUrl(bff, {
    redirect_uri: redirect,
    scope: 'openid api',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  });
  const done = await new TestBrowser().login(url, { username, password: username });
  const tokens = await oidc.authorizationCodeGrant(
    bff,
    new URL(done.url),
    { pkceCodeVerifier: verifier, expectedState: state },
    undefined,
    dpop ? { DPoP: oidc.getDPoPHandle(bff, dpop) } : undefined,
  );
  return tokens.access_token;
}

async function proof(method: string, url: string, token: string, signer: KeyPair = key): Promise<string> {
  const ath = Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token))).toString(
    'base64url',
  );
  return new SignJWT({ htm: method, htu: url, iat: Math.floor(Date.now() / 1000), jti: randomUUID(), ath })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(signer.publicKey) })
    .sign(signer.privateKey);
}

/** A DPoP request: `Authorization: DPoP <token>` plus a fresh proof for exactly this method and URL. */
async function dpopCall(
  base: string,
  path: string,
  token: string,
  init: RequestInit = {},
): Promise<Response> {
  const method = init.method ?? 'GET';
  const headers = new Headers(init.headers);
  headers.set('authorization', `DPoP ${token}`);
  headers.set('dpop', await proof(method, `${base}${path}`, token));
  return fetch(`${base}${path}`, { ...init, method, headers });
}

const bearer = (base: string, path: string, token: string) =>
  fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });

beforeAll(async () => {
  receiver = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('callback');
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  idp = await startIdp({ bffBaseUrl: `http://localhost:${(receiver.address() as AddressInfo).port}` });
  api = await startApi({ issuer: idp.issuer, requireDPoP: true });
  key = await generateKeyPair('ES256');
  jkt = await calculateJwkThumbprint(await exportJWK(key.publicKey));
  worker = await oidc.discovery(
    new URL(idp.url),
    'worker',
    undefined,
    oidc.ClientSecretBasic('worker-secret'),
    insecure,
  );
  boundWorker = (
    await oidc.clientCredentialsGrant(
      worker,
      { scope: 'api.reports' },
      { DPoP: oidc.getDPoPHandle(worker, key) },
    )
  ).access_token;
  plainWorker = (await oidc.clientCredentialsGrant(worker, { scope: 'api.reports' })).access_token;
  boundAlice = await userToken('alice', key);
  plainAlice = await userToken('alice');
}, 60_000);
afterAll(async () => {
  await api?.close();
  await idp?.close();
  await new Promise((resolve) => receiver?.close(resolve));
});

describe('A10: /api/reports with requireDPoP (API_REQUIRE_DPOP=true)', () => {
  it('A10: a DPoP-bound worker token with a valid proof → 200; whoami says DPoP', async () => {
    const res = await dpopCall(api.url, '/api/reports', boundWorker);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ requestedBy: 'worker' });
    const who = await (await dpopCall(api.url, '/api/whoami', boundWorker)).json();
    expect(who).toMatchObject({ kind: 'client', scheme: 'DPoP' });
  });

  it('A10: any Bearer token there → 401 with a bare DPoP challenge; the handler never runs', async () => {
    for (const token of [plainWorker, boundWorker]) {
      const res = await bearer(api.url, '/api/reports', token);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(
        /^DPoP realm="urn:gatehouse:sample-api", algs="[^"]+"$/,
      );
      expect(await res.text()).not.toContain('requestedBy');
    }
  });

  it('A10: a proof for another URL (e.g. the API seen through another host) → 401 invalid_dpop_proof', async () => {
    const headers = {
      authorization: `DPoP ${boundWorker}`,
      dpop: await proof('GET', 'http://api.example/api/reports', boundWorker),
      'x-forwarded-host': 'api.example',
    };
    const res = await fetch(`${api.url}/api/reports`, { headers });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/error="invalid_dpop_proof"/);
  });
});

describe('A10: /api/todos accepts DPoP and Bearer', () => {
  it('A10: a DPoP-bound user token with a proof → todos work (create, list), scheme DPoP', async () => {
    const created = await dpopCall(api.url, '/api/todos', boundAlice, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'via DPoP' }),
    });
    expect(created.status).toBe(201);
    const list = (await (await dpopCall(api.url, '/api/todos', boundAlice)).json()) as { title: string }[];
    expect(list.map((todo) => todo.title)).toContain('via DPoP');
    const who = await (await dpopCall(api.url, '/api/whoami', boundAlice)).json();
    expect(who).toMatchObject({ kind: 'user', sub: 'alice', scheme: 'DPoP' });
  });

  it('A10: an unbound user token as Bearer still works (the BFF today)', async () => {
    expect((await bearer(api.url, '/api/todos', plainAlice)).status).toBe(200);
  });

  it('A10: the DPoP-bound user token as Bearer → 401 invalid_token (no downgrade)', async () => {
    const res = await bearer(api.url, '/api/todos', boundAlice);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="[^"]+", error="invalid_token"/);
  });

  it('A10: the bound user token is bound to our key: cnf.jkt is its thumbprint', () => {
    const claims = JSON.parse(Buffer.from(boundAlice.split('.')[1] as string, 'base64url').toString());
    expect(claims.cnf).toEqual({ jkt });
  });
});

describe('A10: configuration', () => {
  it('A10: todosDPoP required makes Bearer fail on the todos too', async () => {
    const strict = await startApi({ issuer: idp.issuer, todosDPoP: 'required' });
    try {
      expect((await bearer(strict.url, '/api/todos', plainAlice)).status).toBe(401);
      expect((await dpopCall(strict.url, '/api/todos', boundAlice)).status).toBe(200);
    } finally {
      await strict.close();
    }
  });

  it('A10: with nonces on, a conformant client (openid-client) gets use_dpop_nonce and retries once → 200', async () => {
    const nonced = await startApi({ issuer: idp.issuer, requireDPoP: true, dpopNonce: true });
    try {
      const first = await dpopCall(nonced.url, '/api/reports', boundWorker);
      expect(first.status).toBe(401);
      expect(first.headers.get('www-authenticate')).toMatch(/error="use_dpop_nonce"/);
      expect(first.headers.get('dpop-nonce')).toBeTruthy();
      const res = await oidc.fetchProtectedResource(
        worker,
        boundWorker,
        new URL(`${nonced.url}/api/reports`),
        'GET',
        null,
        undefined,
        {
          DPoP: oidc.getDPoPHandle(worker, key),
        },
      );
      expect(res.status).toBe(200);
    } finally {
      await nonced.close();
    }
  });

  it('A10: DPoP options without a public URL fail at creation with a TypeError that says the fix', () => {
    expect(() => createApp({ issuer: idp.issuer, requireDPoP: true })).toThrow(/publicUrl.*API_URL/);
    expect(() =>
      createApp({ issuer: idp.issuer, publicUrl: 'http://127.0.0.1:1', todosDPoP: 'maybe' as never }),
    ).toThrow(/todosDPoP/);
    // Without a public URL the API is Bearer-only, as before DPoP.
    expect(() => createApp({ issuer: idp.issuer })).not.toThrow();
  });
});
