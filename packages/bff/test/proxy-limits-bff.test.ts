// P8 and P9 through the real createBff (real sample IdP, a signed-in session, a behaviour upstream on
// loopback), in the deployment where P8's bypass lived: the BFF's public origin is https (behind a
// TLS-terminating front, simulated by the browser's fetch: https://app.example.com → the BFF's loopback port
// with X-Forwarded-Proto), the upstream plain http on a private address.
import { type RunningIdp, startIdp, TestBrowser } from '@gatehouse/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type BffHost, startBffHost } from './support-proxy/bff-host.js';
import {
  chunkedPost,
  counted,
  hangAborted,
  rawRequest,
  stallAborted,
  startBehaviourUpstream,
  type TestUpstream,
} from './support-proxy/upstream.js';

// Not under .example: the browser's cookie jar (tough-cookie) refuses special-use domains.
const PUBLIC = 'https://app.example.com';
const MiB = 1024 * 1024;

let idp: RunningIdp;
let upstream: TestUpstream;
let host: BffHost;
let alice: TestBrowser;
/** Alice's session as raw request headers (cookie, X-CSRF, a same-origin call). */
let session: Record<string, string>;

/** The TLS-terminating front: the browser's https://app.example.com reaches the BFF on loopback. */
function frontFetch(): typeof fetch {
  return async (input, init) => {
    const url = new URL(String(input instanceof Request ? input.url : input));
    if (url.origin !== PUBLIC) return fetch(input, init);
    const headers = new Headers(init?.headers);
    headers.set('x-forwarded-proto', 'https');
    return fetch(`${host.url}${url.pathname}${url.search}`, { ...init, headers });
  };
}

/** A same-origin SPA call (`X-CSRF: 1`) from a page of the app. */
function spa(path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  return alice.fetch(`${PUBLIC}${path}`, {
    method: init.method ?? 'GET',
    headers: { 'x-csrf': '1', ...init.headers },
    body: init.body,
    initiator: `${PUBLIC}/`,
  });
}

beforeAll(async () => {
  upstream = await startBehaviourUpstream();
  idp = await startIdp({ bffBaseUrl: PUBLIC });
  host = await startBffHost(
    {
      issuer: idp.issuer,
      baseUrl: PUBLIC,
      remoteApis: [
        { prefix: '/api/todos', upstream: `${upstream.origin}/api/todos` },
        { prefix: '/api/hung', upstream: `${upstream.origin}/hung`, timeout: 0.4 },
        { prefix: '/api/stalling', upstream: `${upstream.origin}/stalling`, bodyTimeout: 0.3 },
      ],
    },
    0,
    // The session cookie is Secure: the callback must see the front's https.
    (app) => app.set('trust proxy', 'loopback'),
  );
  alice = new TestBrowser({ fetch: frontFetch() });
  const done = await alice.login(`${PUBLIC}/bff/login`, { username: 'alice', password: 'alice' });
  if (done.status !== 200 || !done.url.startsWith(PUBLIC)) {
    throw new Error(`sign-in ended at ${done.status} ${done.url}`);
  }
  session = {
    cookie: await alice.jar.getCookieString(`${PUBLIC}/`),
    'x-csrf': '1',
    'sec-fetch-site': 'same-origin',
  };
});

afterAll(async () => {
  await host?.close();
  await idp?.close();
  await upstream?.close();
});

beforeEach(() => {
  upstream.seen.length = 0;
  counted.bytes = 0;
});

async function expectSignedIn(): Promise<void> {
  const user = await spa('/bff/user');
  expect(user.status).toBe(200);
  const claims = (await user.json()) as Array<{ type: string; value: unknown }>;
  expect(claims.find((c) => c.type === 'sub')?.value).toBe('alice');
}

describe('P8 through the real BFF (https public origin, http upstream)', () => {
  it('P8: the upstream answers a POST with 307 Location: //app.example.com/bff/logout → 502 problem+json, no Location; the session lives on', async () => {
    await expectSignedIn();
    for (const to of ['//app.example.com/bff/logout', '/\\app.example.com/bff/logout', 'https:/bff/logout']) {
      upstream.seen.length = 0;
      const res = await spa(`/api/todos/redirect?status=307&to=${encodeURIComponent(to)}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"title":"x"}',
      });
      expect(res.status, to).toBe(502);
      expect(res.headers.get('location')).toBeNull();
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      expect(await res.json()).toMatchObject({ code: 'ERR_BFF_UPSTREAM_REDIRECT', status: 502 });
      // The upstream was asked once (with alice's token), and nothing was followed.
      expect(upstream.seen.map((r) => r.method)).toEqual(['POST']);
      expect(upstream.seen[0]?.headers.authorization).toMatch(/^Bearer ey/);
    }
    await expectSignedIn();
  });

  it('P8: a 307 to the route’s own path on the upstream is rewritten onto the public prefix, where a replay reaches the same upstream', async () => {
    const res = await spa(
      `/api/todos/redirect?status=307&to=${encodeURIComponent(`${upstream.origin}/api/todos/echo`)}`,
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' },
    );
    expect(res.status).toBe(307);
    expect(res.headers.get('location')).toBe('/api/todos/echo');
    // What the browser does next: the same POST to the rewritten path, into the same route.
    const replay = await spa('/api/todos/echo', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(replay.status).toBe(200);
    expect(upstream.seen.map((r) => `${r.method} ${r.url}`)).toEqual([
      `POST /api/todos/redirect?status=307&to=${encodeURIComponent(`${upstream.origin}/api/todos/echo`)}`,
      'POST /api/todos/echo',
    ]);
  });
});

describe('P9 through the real BFF', () => {
  it('P9: an 11 MB POST with Content-Length → 413 before anything is sent upstream', async () => {
    const res = await rawRequest(host.port, {
      method: 'POST',
      path: '/api/todos/count',
      headers: { ...session, 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(11 * 1000 * 1000, 1),
    });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'ERR_BFF_PROXY_BODY_TOO_LARGE', status: 413 });
    expect(upstream.seen).toHaveLength(0);
    expect(counted.bytes).toBe(0);
  });

  it('P9: an 11 MB chunked POST → 413; the upstream received nothing beyond the 10 MiB limit', async () => {
    const res = await chunkedPost(host.port, '/api/todos/count', session, 11 * 1000 * 1000);
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'ERR_BFF_PROXY_BODY_TOO_LARGE' });
    await new Promise((r) => setTimeout(r, 100));
    expect(upstream.seen).toHaveLength(1);
    expect(counted.bytes).toBeLessThanOrEqual(10 * MiB);
  });

  it('P9: an upstream that never answers headers → 504 after the route timeout, the upstream request closed', async () => {
    const before = hangAborted.count;
    const started = performance.now();
    const res = await rawRequest(host.port, { path: '/api/hung/hang', headers: session });
    expect(res.status).toBe(504);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'ERR_BFF_UPSTREAM_TIMEOUT', status: 504 });
    expect(performance.now() - started).toBeGreaterThanOrEqual(350);
    for (let i = 0; i < 40 && hangAborted.count === before; i++) await new Promise((r) => setTimeout(r, 25));
    expect(hangAborted.count).toBe(before + 1);
  });

  it('P9: headers, then a stalled body → cut after bodyTimeout, the upstream request closed', async () => {
    const before = stallAborted.count;
    const outcome = await rawRequest(host.port, { path: '/api/stalling/stall', headers: session }).then(
      (res) => `completed with ${res.status}`,
      (err: Error) => err.message,
    );
    expect(outcome).toBe('aborted');
    for (let i = 0; i < 40 && stallAborted.count === before; i++) await new Promise((r) => setTimeout(r, 25));
    expect(stallAborted.count).toBe(before + 1);
  });

  it('P9: after the refusals alice is still signed in and her calls go through', async () => {
    await expectSignedIn();
    const res = await spa('/api/todos/echo');
    expect(res.status).toBe(200);
    expect(upstream.seen).toHaveLength(1);
  });
});
