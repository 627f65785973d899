// SECURITY R8 across instances: two sample BFF hosts on one real Redis, the real IdP (refresh-token
// rotation on, reuse revokes the grant) behind the fault front, and a token endpoint slower than the
// refresh lock's TTL. The lock must outlive the refresh (it is renewed while held), so the second
// instance never sends the old refresh token again: exactly one refresh request, and the session lives.

import { createRedisStore, type SessionStore } from '@gatehouse/bff';
import {
  connectTestRedis,
  deleteRedisPrefix,
  getFreePort,
  type RunningApi,
  type RunningBff,
  requireRedis,
  startApi,
  startBff,
  TestBrowser,
  uniqueRedisPrefix,
} from '@gatehouse/testing';
import type { RedisClientType } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClock, SESSION_SECRET } from './support-core/stack.js';
import { type IdpFront, startIdpFront, tokenHash } from './support-res/idp-front.js';

const redisReady = await requireRedis('bff refresh lock (two instances, one Redis)');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(!redisReady)('R8: two BFF instances on Redis, a token endpoint slower than the lock', () => {
  const prefix = uniqueRedisPrefix('bff-r8');
  let front: IdpFront;
  let api: RunningApi;
  let a: RunningBff;
  let b: RunningBff;
  const clients: RedisClientType[] = [];
  const clock = createClock();

  beforeAll(async () => {
    const port = await getFreePort();
    front = await startIdpFront({ bffBaseUrl: `http://localhost:${port}` });
    api = await startApi({ issuer: front.issuer });
    // httpTimeout 1 s: the refresh lock lives max(1, httpTimeout) = 1 s unless renewed, a waiting call
    // waits ≤ 1 s, the refresh request itself may take 3 s.
    const common = {
      issuer: front.issuer,
      sessionSecret: SESSION_SECRET,
      apiUrl: api.url,
      redisPrefix: prefix,
      bff: { fetch: front.fetch, clock: clock.now, httpTimeout: 1 },
    };
    for (let i = 0; i < 2; i++) clients.push(await connectTestRedis());
    a = await startBff({ ...common, port, redis: clients[0] });
    b = await startBff({ ...common, redis: clients[1] });
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    if (clients[0]) await deleteRedisPrefix(clients[0], prefix);
    for (const c of clients) await c.close();
    await api?.close();
    await front?.close();
  });

  const call = async (bff: RunningBff, cookie: string) => {
    const res = await fetch(`${bff.url}/api/todos`, {
      headers: { cookie: `__Host-bff=${cookie}`, 'x-csrf': '1', 'sec-fetch-site': 'same-origin' },
    });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.text() };
  };

  const signIn = async (user: string) => {
    const browser = new TestBrowser();
    await browser.login(`${a.url}/bff/login`, { username: user, password: user });
    return (await browser.cookie(`${a.url}/`, '__Host-bff'))!;
  };

  it('R8: expired token, calls on both instances, token endpoint 2.5 s (> the 1 s lock) → exactly one refresh request with the old refresh token; the session lives', async () => {
    const cookie = await signIn('alice');
    expect((await call(b, cookie)).status).toBe(200);
    clock.advance(400);
    const before = front.refreshes.length;
    front.fault = { kind: 'delay', ms: 2500 };
    // Waves of calls on both instances while the refresh is under way, until well after the lock TTL.
    const statuses: number[] = [];
    const started = Date.now();
    while (Date.now() - started < 3000) {
      const wave = await Promise.all([call(a, cookie), call(b, cookie), call(b, cookie), call(a, cookie)]);
      for (const answer of wave) {
        statuses.push(answer.status);
        if (answer.status === 503) expect(answer.retryAfter).toMatch(/^[1-9]\d*$/);
      }
      await sleep(100);
    }
    front.fault = { kind: 'pass' };
    await sleep(300);
    expect(statuses.filter((s) => s !== 200 && s !== 503)).toEqual([]);
    const sent = front.refreshes.slice(before);
    expect(sent).toHaveLength(1);
    // Both instances now serve the rotated tokens without another refresh.
    for (const bff of [a, b, a, b]) expect((await call(bff, cookie)).status).toBe(200);
    expect(front.refreshes.length - before).toBe(1);
    // And the next refresh uses the new refresh token (a reuse of the old one would revoke the grant).
    clock.advance(400);
    expect((await call(b, cookie)).status).toBe(200);
    const next = front.refreshes.slice(before);
    expect(next).toHaveLength(2);
    expect(next[1]?.rt).not.toBe(next[0]?.rt);
  });

  it('R7 R8: token inside the margin, slow token endpoint → all calls on both instances get 200 at once, one background refresh cluster-wide', async () => {
    const cookie = await signIn('bob');
    clock.advance(250); // 50 s left: due, still valid
    const before = front.refreshes.length;
    front.fault = { kind: 'delay', ms: 2000 };
    const started = Date.now();
    while (Date.now() - started < 2500) {
      const wave = await Promise.all([call(a, cookie), call(b, cookie)]);
      expect(wave.map((w) => w.status)).toEqual([200, 200]);
      await sleep(100);
    }
    front.fault = { kind: 'pass' };
    await sleep(300);
    expect(front.refreshes.length - before).toBe(1);
  });
});

describe.skipIf(!redisReady)('R8 fencing: a holder whose lock lapsed cannot overwrite newer tokens', () => {
  const prefix = uniqueRedisPrefix('bff-r8-fence');
  let front: IdpFront;
  let api: RunningApi;
  let a: RunningBff;
  let b: RunningBff;
  const clients: RedisClientType[] = [];
  const clock = createClock();

  beforeAll(async () => {
    const port = await getFreePort();
    // Without rotation both refreshes below succeed at the IdP, so only the fence decides what is kept.
    front = await startIdpFront({ bffBaseUrl: `http://localhost:${port}`, rotateRefreshTokens: false });
    api = await startApi({ issuer: front.issuer });
    for (let i = 0; i < 2; i++) clients.push(await connectTestRedis());
    // Instance A cannot renew its lock (as if the store dropped its renewals) and its refresh requests
    // leave 2.5 s late; instance B is healthy and fast.
    const lapsing = createRedisStore({ client: clients[0]!, prefix });
    const storeA: SessionStore = {
      ...lapsing,
      async lock(key, ttl) {
        const lock = await lapsing.lock(key, ttl);
        return lock && { ...lock, extend: async () => false };
      },
    };
    const slowFetch = async (input: string | URL, init?: RequestInit) => {
      const grant = init?.body instanceof URLSearchParams ? init.body.get('grant_type') : undefined;
      if (grant === 'refresh_token') await sleep(2500);
      return front.fetch(input, init);
    };
    const common = { issuer: front.issuer, sessionSecret: SESSION_SECRET, apiUrl: api.url };
    a = await startBff({
      ...common,
      port,
      bff: { fetch: slowFetch, clock: clock.now, httpTimeout: 1, store: storeA },
    });
    b = await startBff({
      ...common,
      bff: {
        fetch: front.fetch,
        clock: clock.now,
        httpTimeout: 1,
        store: createRedisStore({ client: clients[1]!, prefix }),
      },
    });
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    if (clients[0]) await deleteRedisPrefix(clients[0], prefix);
    for (const c of clients) await c.close();
    await api?.close();
    await front?.close();
  });

  /** The access token a BFF would send for this cookie now (read through the public API, not decoded). */
  const tokenOf = async (bff: RunningBff, cookie: string) =>
    tokenHash(await bff.app.bff.getAccessToken({ headers: { cookie: `__Host-bff=${cookie}` } } as never));

  it('R8: A refreshes slowly with a lapsed lock, B refreshes meanwhile; A’s late write is refused and both serve B’s tokens', async () => {
    const browser = new TestBrowser();
    await browser.login(`${a.url}/bff/login`, { username: 'alice', password: 'alice' });
    const cookie = (await browser.cookie(`${a.url}/`, '__Host-bff'))!;
    clock.advance(400);
    const issuedBefore = front.issued.length;
    const call = (bff: RunningBff) =>
      fetch(`${bff.url}/api/todos`, {
        headers: { cookie: `__Host-bff=${cookie}`, 'x-csrf': '1', 'sec-fetch-site': 'same-origin' },
      }).then((r) => r.status);
    const fromA = call(a); // A takes the lock (1 s, never renewed) and sends its request 2.5 s late
    await sleep(1400); // A's lock has lapsed
    expect(await call(b)).toBe(200); // B takes the lock, refreshes at once, writes fenced
    expect(await fromA).toBe(503); // A's caller waited httpTimeout
    await sleep(1600); // A's refresh answers now; its write must be refused
    const issued = front.issued.slice(issuedBefore);
    expect(issued).toHaveLength(2); // B's first, then A's
    expect(await tokenOf(b, cookie)).toBe(issued[0]);
    expect(await tokenOf(a, cookie)).toBe(issued[0]);
    expect(await call(a)).toBe(200);
  });
});
