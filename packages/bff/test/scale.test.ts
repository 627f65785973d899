// Scaling out: two createBff instances sharing one Redis behind a per-request round-robin balancer,
// with the real IdP and the real sample API. Login through one, calls through the other, back-channel
// logout received by one ends the session on both, and a burst of calls with an expired access token
// spread over both instances causes exactly one refresh at the IdP (SECURITY R2 across instances).
import {
  connectTestRedis,
  deleteRedisPrefix,
  getFreePort,
  type RunningApi,
  type RunningIdp,
  requireRedis,
  startApi,
  startIdp,
  type TestBrowser,
  uniqueRedisPrefix,
} from '@gatehouse/testing';
import type { RedisClientType } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisStore } from '../src/lib/store/redis.js';
import { type Balancer, startBalancer } from './support-proxy/balancer.js';
import { type BffHost, signIn, spaFetch, startBffHost } from './support-proxy/bff-host.js';

const redisReady = await requireRedis('bff scale-out (two instances, one Redis)');

describe.skipIf(!redisReady)('two BFF instances, one Redis, a round-robin balancer', () => {
  let idp: RunningIdp;
  let api: RunningApi;
  let balancer: Balancer;
  let instances: BffHost[] = [];
  const clients: RedisClientType[] = [];
  const prefix = uniqueRedisPrefix('bff-scale');
  // Shared clock of both instances: moving it ages every access token at once.
  let offsetMs = 0;
  const clock = () => Date.now() + offsetMs;

  beforeAll(async () => {
    const port = await getFreePort();
    const baseUrl = `http://127.0.0.1:${port}`;
    idp = await startIdp({ bffBaseUrl: baseUrl, accessTokenTtl: 300 });
    api = await startApi({ issuer: idp.issuer });
    for (let i = 0; i < 2; i++) {
      const client = await connectTestRedis();
      clients.push(client);
      instances.push(
        await startBffHost({
          issuer: idp.issuer,
          baseUrl,
          store: createRedisStore({ client, prefix }),
          clock,
          remoteApis: [{ prefix: '/api/me', upstream: `${api.url}/api/whoami` }],
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
    instances = [];
    if (clients[0]) await deleteRedisPrefix(clients[0], prefix);
    for (const client of clients) await client.close();
    await api?.close();
    await idp?.close();
  });

  /** A call made directly to one instance (the cookie jar is per host, so the session cookie goes along). */
  const direct = (browser: TestBrowser, index: number, path: string) =>
    spaFetch(browser, instances[index]?.url ?? '', path);

  it('login through the balancer (both instances take part), then API calls through either instance', async () => {
    const before = [...balancer.served];
    const browser = await signIn(balancer.url);
    // The login's BFF requests (login, callback) were spread over both instances.
    expect(balancer.served.every((n, i) => n > (before[i] ?? 0))).toBe(true);
    for (const index of [0, 1]) {
      const res = await direct(browser, index, '/api/me');
      expect(res.status, `instance ${index}`).toBe(200);
      expect(await res.json()).toMatchObject({ kind: 'user', sub: 'alice' });
    }
  });

  it('B4: a back-channel logout received by one instance ends the session on both', async () => {
    const browser = await signIn(balancer.url, 'bob');
    for (const index of [0, 1]) expect((await direct(browser, index, '/bff/user')).status).toBe(200);
    const result = await idp.endSessions('bob'); // the IdP posts one logout token to the balancer
    expect(result.notified).toContain('bff');
    for (const index of [0, 1]) expect((await direct(browser, index, '/bff/user')).status).toBe(401);
    for (const index of [0, 1]) expect((await direct(browser, index, '/api/me')).status).toBe(401);
  });

  it('R2: 50 concurrent proxied calls with an expired access token over both instances → exactly one refresh', async () => {
    const browser = await signIn(balancer.url);
    expect((await spaFetch(browser, balancer.url, '/api/me')).status).toBe(200);
    const refreshesBefore = idp.counters.token('refresh_token');
    const servedBefore = [...balancer.served];
    offsetMs = 400_000; // both instances now see the 300 s access token as expired
    try {
      const results = await Promise.all(
        Array.from({ length: 50 }, () => spaFetch(browser, balancer.url, '/api/me').then((r) => r.status)),
      );
      expect(results.filter((s) => s === 200)).toHaveLength(50);
      expect(idp.counters.token('refresh_token') - refreshesBefore).toBe(1);
      const spread = balancer.served.map((n, i) => n - (servedBefore[i] ?? 0));
      expect(spread[0]).toBeGreaterThanOrEqual(20);
      expect(spread[1]).toBeGreaterThanOrEqual(20);
    } finally {
      offsetMs = 0;
    }
  });
});
