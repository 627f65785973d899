// Several BFF instances on one Redis: cluster-wide single-flight refresh, shared sessions, and Redis
// going away mid-test (through a TCP proxy the test closes) → 503, then recovery.
import { connect, createServer, type Server, type Socket } from 'node:net';
import {
  connectTestRedis,
  deleteRedisPrefix,
  getFreePort,
  type RunningBff,
  type RunningIdp,
  redisUrl,
  requireRedis,
  startBff,
  startIdp,
  uniqueRedisPrefix,
} from '@gatehouse/testing';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertNoSecrets,
  captureLogger,
  createClock,
  createTap,
  SESSION_SECRET,
  sessionCookie,
  signIn,
} from './support-core/stack.js';

const redisReady = await requireRedis('bff on Redis (two instances, outage)');

/** A TCP proxy to Redis that the test can stop and start again on the same port. */
async function startRedisProxy() {
  const target = new URL(redisUrl);
  const port = await getFreePort();
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  const start = () =>
    new Promise<void>((resolve, reject) => {
      server = createServer((client) => {
        const upstream = connect(Number(target.port || 6379), target.hostname);
        sockets.add(client);
        sockets.add(upstream);
        client.pipe(upstream).pipe(client);
        const drop = () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        client.on('error', drop).on('close', drop);
        upstream.on('error', drop).on('close', drop);
      });
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
  const stop = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      sockets.clear();
      if (!server) return resolve();
      server.close(() => resolve());
    });
  await start();
  return { url: `redis://127.0.0.1:${port}`, start, stop };
}

describe.skipIf(!redisReady)('two BFF instances sharing Redis', () => {
  const prefix = uniqueRedisPrefix('bff-cluster');
  let idp: RunningIdp;
  let a: RunningBff;
  let b: RunningBff;
  let proxy: Awaited<ReturnType<typeof startRedisProxy>>;
  const clients: ReturnType<typeof createClient>[] = [];
  const tapA = createTap();
  const tapB = createTap();
  const clock = createClock();
  const logger = captureLogger();

  beforeAll(async () => {
    proxy = await startRedisProxy();
    const port = await getFreePort();
    idp = await startIdp({ bffBaseUrl: `http://localhost:${port}` });
    const connectClient = async (url: string) => {
      // Reconnect quickly so the recovery test does not wait on the default back-off.
      const client = createClient({ url, socket: { reconnectStrategy: () => 50, connectTimeout: 1000 } });
      client.on('error', () => {});
      await client.connect();
      clients.push(client);
      return client;
    };
    const common = { issuer: idp.issuer, sessionSecret: SESSION_SECRET, redisPrefix: prefix, logger };
    a = await startBff({
      ...common,
      port,
      redis: await connectClient(proxy.url),
      bff: { fetch: tapA.fetch, clock: clock.now },
    });
    b = await startBff({
      ...common,
      redis: await connectClient(redisUrl),
      bff: { fetch: tapB.fetch, clock: clock.now },
    });
  });

  afterAll(async () => {
    assertNoSecrets(logger.lines.join('\n'), [...tapA.tokens, ...tapB.tokens, SESSION_SECRET]);
    await a?.close();
    await b?.close();
    await idp?.close();
    const cleaner = await connectTestRedis();
    await deleteRedisPrefix(cleaner, prefix);
    await cleaner.close();
    for (const c of clients) await c.close().catch(() => {});
    await proxy?.stop();
  });

  const whoami = async (bff: RunningBff, cookie: string) => {
    const res = await fetch(`${bff.url}/local/whoami`, {
      headers: { cookie: `__Host-bff=${cookie}`, 'x-csrf': '1', 'sec-fetch-site': 'same-origin' },
    });
    return { status: res.status, body: await res.text() };
  };

  it('a session created on one instance is served by the other', async () => {
    const { browser } = await signIn({ bff: a });
    const cookie = (await sessionCookie(browser, { bff: a }))!;
    expect((await whoami(b, cookie)).status).toBe(200);
    expect(await b.app.bff.sessions.list({ iss: idp.issuer, sub: 'alice' })).toHaveLength(1);
  });

  it('R2: 50 calls with an expired token spread over two instances → exactly 1 refresh, 50 successes (rotation on)', async () => {
    const { browser } = await signIn({ bff: a }, 'bob');
    const cookie = (await sessionCookie(browser, { bff: a }))!;
    for (let round = 1; round <= 2; round++) {
      clock.advance(400);
      const before = idp.counters.token('refresh_token');
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => whoami(i % 2 ? a : b, cookie)));
      expect(results.map((r) => r.status)).toEqual(Array(50).fill(200));
      expect(idp.counters.token('refresh_token') - before).toBe(1);
    }
  });

  it('B4 admin API: revoking by sub ends the sessions on every instance', async () => {
    const first = await signIn({ bff: a }, 'bob');
    const second = await signIn({ bff: a }, 'bob');
    const c1 = (await sessionCookie(first.browser, { bff: a }))!;
    const c2 = (await sessionCookie(second.browser, { bff: a }))!;
    expect((await whoami(b, c1)).status).toBe(200);
    const ended = await b.app.bff.sessions.revoke({ iss: idp.issuer, sub: 'bob' });
    expect(ended).toBeGreaterThanOrEqual(2);
    expect((await whoami(a, c1)).status).toBe(401);
    expect((await whoami(a, c2)).status).toBe(401);
    expect((await whoami(b, c2)).status).toBe(401);
  });

  it('Redis stopped mid-test → 503 JSON (no crash, no session mix-up), then recovery', async () => {
    const { browser } = await signIn({ bff: a });
    const cookie = (await sessionCookie(browser, { bff: a }))!;
    expect((await whoami(a, cookie)).status).toBe(200);

    await proxy.stop();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const down = await whoami(a, cookie);
    expect(down.status).toBe(503);
    // 5xx answers are problem+json with the same `error` member (see sendJsonError).
    expect(JSON.parse(down.body)).toMatchObject({ status: 503, error: 'ERR_BFF_STORE_UNAVAILABLE' });
    const user = await fetch(`${a.url}/bff/user`, {
      headers: { cookie: `__Host-bff=${cookie}`, 'x-csrf': '1' },
    });
    expect(user.status).toBe(503);
    // S6: starting a sign-in writes nothing server-side (the transaction is in its cookie).
    const login = await fetch(`${a.url}/bff/login`, { redirect: 'manual' });
    expect(login.status).toBe(302);
    // The other instance (its own connection) keeps serving the same session.
    expect((await whoami(b, cookie)).status).toBe(200);

    await proxy.start();
    const deadline = Date.now() + 5000;
    let status = 0;
    while (Date.now() < deadline) {
      status = (await whoami(a, cookie)).status;
      if (status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(status).toBe(200);
    const body = JSON.parse((await whoami(a, cookie)).body) as { sub: string };
    expect(body.sub).toBe('alice');
  });
});
