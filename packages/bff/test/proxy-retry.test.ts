// SECURITY P6 end to end: the real sample API refuses an access token the BFF still believes valid
// (their clocks disagree), answering 401 invalid_token. A GET gets one forced refresh at the real IdP
// and one retry; a POST is never replayed and the SPA sees the 401.
import { getFreePort, type RunningApi, type RunningIdp, startApi, startIdp } from '@gatehouse/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BffHost, signIn, spaFetch, startBffHost } from './support-proxy/bff-host.js';

let idp: RunningIdp;
let api: RunningApi;
let host: BffHost;
let baseUrl: string;
// The BFF's clock, moved back after login so the BFF keeps trusting tokens the API already refuses.
let offsetMs = 0;

beforeAll(async () => {
  const port = await getFreePort();
  baseUrl = `http://127.0.0.1:${port}`;
  idp = await startIdp({ bffBaseUrl: baseUrl, accessTokenTtl: 2 });
  api = await startApi({ issuer: idp.issuer, clockTolerance: 0 });
  host = await startBffHost(
    {
      issuer: idp.issuer,
      baseUrl,
      refreshMargin: 0,
      clock: () => Date.now() + offsetMs,
      remoteApis: [
        { prefix: '/api/me', upstream: `${api.url}/api/whoami` },
        { prefix: '/api/todos', upstream: `${api.url}/api/todos` },
      ],
    },
    port,
  );
});

afterAll(async () => {
  await host?.close();
  await api?.close();
  await idp?.close();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('P6 with the real IdP and API', () => {
  it('GET: upstream 401 invalid_token → exactly one refresh and one retry → 200; POST: never replayed → 401', async () => {
    const browser = await signIn(baseUrl);
    offsetMs = -30_000;
    await sleep(2300); // the 2 s access token is now expired for the API, not for the BFF

    const before = idp.counters.token('refresh_token');
    const get = await spaFetch(browser, baseUrl, '/api/me');
    expect(get.status).toBe(200);
    expect(await get.json()).toMatchObject({ sub: 'alice' });
    expect(idp.counters.token('refresh_token') - before).toBe(1);

    offsetMs = -60_000; // keep the BFF trusting the refreshed token after it expires too
    await sleep(2300);
    const beforePost = idp.counters.token('refresh_token');
    const post = await spaFetch(browser, baseUrl, '/api/todos', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'must not be replayed' }),
    });
    expect(post.status).toBe(401);
    expect(post.headers.get('www-authenticate')).toMatch(/invalid_token/);
    expect(idp.counters.token('refresh_token') - beforePost).toBe(0);
    // Nothing was created behind the SPA's back: a GET (which refreshes and retries) shows no todo.
    const list = await spaFetch(browser, baseUrl, '/api/todos');
    expect(list.status).toBe(200);
    expect(JSON.stringify(await list.json())).not.toContain('must not be replayed');
    expect(idp.counters.token('refresh_token') - beforePost).toBe(1);
  });
});

describe('P6 D1: the same under DPoP (the API challenges with the DPoP scheme)', () => {
  let dpopIdp: RunningIdp;
  let dpopApi: RunningApi;
  let dpopHost: BffHost;
  let dpopBase: string;
  let dpopOffsetMs = 0;
  beforeAll(async () => {
    const port = await getFreePort();
    dpopBase = `http://127.0.0.1:${port}`;
    dpopIdp = await startIdp({ bffBaseUrl: dpopBase, accessTokenTtl: 2 });
    dpopApi = await startApi({ issuer: dpopIdp.issuer, clockTolerance: 0, todosDPoP: 'required' });
    dpopHost = await startBffHost(
      {
        issuer: dpopIdp.issuer,
        baseUrl: dpopBase,
        refreshMargin: 0,
        dpop: true,
        clock: () => Date.now() + dpopOffsetMs,
        remoteApis: [{ prefix: '/api/todos', upstream: `${dpopApi.url}/api/todos` }],
      },
      port,
    );
  });
  afterAll(async () => {
    await dpopHost?.close();
    await dpopApi?.close();
    await dpopIdp?.close();
  });

  it('P6 D1: GET with an expired DPoP-bound token → DPoP invalid_token → one refresh, one retry with a new proof → 200', async () => {
    const browser = await signIn(dpopBase);
    dpopOffsetMs = -30_000;
    await sleep(2300);
    const before = dpopIdp.counters.token('refresh_token');
    const get = await spaFetch(browser, dpopBase, '/api/todos');
    expect(get.status).toBe(200);
    expect(dpopIdp.counters.token('refresh_token') - before).toBe(1);
  });
});
