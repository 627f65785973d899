// SECURITY P7 across instances: two createBff instances share one Redis behind a per-request round-robin
// balancer, with the real IdP; one signed-in browser bursts calls through both. The per-session bucket
// lives in Redis, so the burst allowance holds for the session as a whole, not per instance.
import {
  connectTestRedis,
  deleteRedisPrefix,
  getFreePort,
  type RunningIdp,
  requireRedis,
  startIdp,
  uniqueRedisPrefix,
} from '@gatehouse/testing';
import type { RedisClientType } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryStore } from '../src/lib/store/memory.js';
import { createRedisStore } from '../src/lib/store/redis.js';
import { type Balancer, startBalancer } from './support-proxy/balancer.js';
import { type BffHost, signIn, spaFetch, startBffHost } from './support-proxy/bff-host.js';
import { startRecordingServer, type TestUpstream } from './support-proxy/upstream.js';

const redisReady = await requireRedis('bff per-session rate limit across instances');

describe.skipIf(!redisReady)('P7 per-session rate limit on a shared Redis store', () => {
  let idp: RunningIdp;
  let upstream: TestUpstream;
  let balancer: Balancer;
  let baseUrl: string;
  const instances: BffHost[] = [];
  const clients: RedisClientType[] = [];
  const prefix = uniqueRedisPrefix('bff-rate');

  beforeAll(async () => {
    const port = await getFreePort();
    baseUrl = `http://127.0.0.1:${port}`;
    idp = await startIdp({ bffBaseUrl: baseUrl });
    upstream = await startRecordingServer((_req, res) => res.end('ok'));
    for (let i = 0; i < 2; i++) {
      const client = await connectTestRedis();
      clients.push(client);
      instances.push(
        await startBffHost({
          issuer: idp.issuer,
          baseUrl,
          store: createRedisStore({ client, prefix }),
          remoteApis: [
            // 5 calls at once, then one every 20 s: nothing refills during the test.
            {
              prefix: '/api/limited',
              upstream: `${upstream.origin}/l`,
              rateLimit: { burst: 5, perSecond: 0.05 },
            },
            {
              prefix: '/api/other',
              upstream: `${upstream.origin}/o`,
              rateLimit: { burst: 5, perSecond: 0.05 },
            },
            { prefix: '/api/free', upstream: `${upstream.origin}/f`, rateLimit: false },
          ],
        }),
      );
    }
    balancer = await startBalancer(
      instances.map((i) => i.url),
      port,
    );
  });

  afterAll(async () => {
    await balancer?.close();
    for (const instance of instances) await instance.close();
    if (clients[0]) await deleteRedisPrefix(clients[0], prefix);
    for (const client of clients) await client.close();
    await upstream?.close();
    await idp?.close();
  });

  it('P7: a burst over the limit through two instances → exactly `burst` calls pass, the rest 429 with Retry-After', async () => {
    const browser = await signIn(baseUrl);
    upstream.seen.length = 0;
    const servedBefore = [...balancer.served];
    const results: Array<{ status: number; retryAfter: string | null; body: string }> = [];
    for (let i = 0; i < 10; i++) {
      const res = await spaFetch(browser, baseUrl, `/api/limited/x${i}`);
      results.push({
        status: res.status,
        retryAfter: res.headers.get('retry-after'),
        body: await res.text(),
      });
    }
    // Both instances took part (round robin), and together they let exactly 5 through.
    expect(balancer.served.map((n, i) => n - (servedBefore[i] ?? 0))).toEqual([5, 5]);
    expect(results.filter((r) => r.status === 200)).toHaveLength(5);
    const limited = results.filter((r) => r.status === 429);
    expect(limited).toHaveLength(5);
    for (const r of limited) {
      expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
      expect(Number(r.retryAfter)).toBeLessThanOrEqual(20);
      expect(JSON.parse(r.body)).toEqual({
        type: 'about:blank',
        title: 'Too Many Requests',
        status: 429,
        code: 'ERR_BFF_RATE_LIMITED',
        error: 'ERR_BFF_RATE_LIMITED',
      });
    }
    expect(upstream.seen.filter((r) => r.url.startsWith('/l/'))).toHaveLength(5);

    // Buckets are per route and per session: another route, another browser, and an unlimited route
    // are not affected by this session's empty bucket.
    expect((await spaFetch(browser, baseUrl, '/api/other/y')).status).toBe(200);
    expect((await spaFetch(browser, baseUrl, '/api/free/y')).status).toBe(200);
    const bob = await signIn(baseUrl, 'bob');
    expect((await spaFetch(bob, baseUrl, '/api/limited/y')).status).toBe(200);
  });
});

describe('P7 with the default memory store and with a custom store without consumeRate', () => {
  let idp: RunningIdp;
  let upstream: TestUpstream;
  let baseUrl: string;
  let memoryHost: BffHost;
  let customHost: BffHost;

  beforeAll(async () => {
    const port = await getFreePort();
    baseUrl = `http://127.0.0.1:${port}`;
    idp = await startIdp({ bffBaseUrl: baseUrl });
    upstream = await startRecordingServer((_req, res) => res.end('ok'));
    const remoteApis = [
      { prefix: '/api/limited', upstream: `${upstream.origin}/l`, rateLimit: { burst: 3, perSecond: 0.05 } },
    ];
    const shared = createMemoryStore();
    memoryHost = await startBffHost({ issuer: idp.issuer, baseUrl, remoteApis, store: shared }, port);
    // The same sessions seen through a store that predates consumeRate (as a host's own store might):
    // the BFF then keeps the buckets in process instead.
    const { consumeRate: _dropped, ...legacy } = shared;
    customHost = await startBffHost({ issuer: idp.issuer, baseUrl, remoteApis, store: legacy });
  });

  afterAll(async () => {
    await memoryHost?.close();
    await customHost?.close();
    await upstream?.close();
    await idp?.close();
  });

  it('P7: burst 3 → the 4th call is 429 with Retry-After (memory store)', async () => {
    const browser = await signIn(baseUrl);
    const answers: Response[] = [];
    for (let i = 0; i < 4; i++) answers.push(await spaFetch(browser, baseUrl, `/api/limited/${i}`));
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 429]);
    // 0.05 calls per second: the next one is 20 s away.
    expect(answers[3]?.headers.get('retry-after')).toBe('20');
  });

  it('P7: a custom store without consumeRate is still limited, per process', async () => {
    // A fresh session (its own bucket), signed in through the public URL; the cookie goes to either port.
    const browser = await signIn(baseUrl, 'bob');
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++)
      statuses.push((await spaFetch(browser, customHost.url, `/api/limited/${i}`)).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
  });
});
