// SECURITY R8 across instances: two sample BFF hosts on one real Redis, the real IdP (refresh-token
// rotation on, reuse revokes the grant) behind the fault front, and a token endpoint slower than the
// refresh lock's TTL. The lock must outlive the refresh (it is renewed while held), so the second
// instance never sends the old refresh token again: exactly one refresh request, and the session lives.
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
import { type IdpFront, startIdpFront } from './support-res/idp-front.js';

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
