// The shared (Redis) cache: real Redis, real IdP; a TCP proxy in front of Redis to cut or stall it.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import {
  connectTestRedis,
  deleteRedisPrefix,
  getFreePort,
  type RunningIdp,
  redisUrl,
  requireRedis,
  startIdp,
  uniqueRedisPrefix,
} from '@gatehouse/testing';
import { createClient, type RedisClientType } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenManager, type TokenManagerOptions } from '../src/index.js';
import { Sealer } from '../src/lib/seal.js';
import { captureLogger, type FakeServer, startFakeServer, tokenResponse } from './helpers.js';

const redisReady = await requireRedis('token-manager shared cache');
const SECRET = 'a-test-secret-of-at-least-32-characters!';
const prefix = uniqueRedisPrefix('token-manager');

let idp: RunningIdp;
let admin: RedisClientType;
const clients: RedisClientType[] = [];

/** A node-redis client as the README recommends: no offline queue, fast connect, reconnects. */
async function redisClient(url = redisUrl, connect = true): Promise<RedisClientType> {
  const client: RedisClientType = createClient({
    url,
    disableOfflineQueue: true,
    socket: { connectTimeout: 500, reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 500) },
  });
  client.on('error', () => {});
  clients.push(client);
  if (connect) await client.connect();
  return client;
}

/** `commandTimeout` is generous by default so a loaded CI machine never degrades by accident. */
function manager(redis: RedisClientType, extra: Partial<TokenManagerOptions> = {}, commandTimeout = 2) {
  return createTokenManager({
    clients: {
      reports: {
        issuer: idp.issuer,
        clientId: 'worker',
        clientSecret: 'worker-secret',
        scope: 'api.reports',
      },
    },
    sharedCache: { redis, keyPrefix: prefix, encryptionSecret: SECRET, commandTimeout },
    ...extra,
  });
}

async function countRequests(fn: () => Promise<unknown>): Promise<number> {
  const before = idp.counters.token();
  await fn();
  return idp.counters.token() - before;
}

/** A TCP proxy to Redis that a test can cut (close everything) or stall (stop forwarding). */
async function startRedisProxy(): Promise<{ url: string; stall(): void; cut(): Promise<void> }> {
  const target = new URL(redisUrl);
  const sockets = new Set<Socket>();
  let stalled = false;
  const server: Server = createServer((downstream) => {
    const upstream = createConnectionTo(target);
    sockets.add(downstream).add(upstream);
    downstream.on('data', (chunk) => {
      if (!stalled) upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!stalled) downstream.write(chunk);
    });
    for (const s of [downstream, upstream]) s.on('error', () => {}).on('close', () => sockets.delete(s));
    downstream.on('close', () => upstream.destroy());
    upstream.on('close', () => downstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `redis://127.0.0.1:${port}`,
    stall: () => {
      stalled = true;
    },
    cut: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

function createConnectionTo(target: URL): Socket {
  return createConnection({ host: target.hostname, port: Number(target.port || 6379) });
}

describe.skipIf(!redisReady)('shared cache in Redis', () => {
  beforeAll(async () => {
    idp = await startIdp({ accessTokenTtl: 120 });
    admin = await connectTestRedis();
  });
  afterAll(async () => {
    await deleteRedisPrefix(admin, prefix);
    for (const client of clients) if (client.isOpen) await client.close().catch(() => {});
    await admin?.close();
    await idp?.close();
  });

  it('T5: two managers (two processes) sharing Redis cause one token request between them', async () => {
    await deleteRedisPrefix(admin, prefix);
    const a = manager(await redisClient());
    const b = manager(await redisClient());
    let results: Array<{ accessToken: string; source: string }> = [];
    const requests = await countRequests(async () => {
      results = await Promise.all([
        ...Array.from({ length: 20 }, () => a.getAccessToken('reports')),
        ...Array.from({ length: 20 }, () => b.getAccessToken('reports')),
      ]);
    });
    expect(requests).toBe(1);
    expect(new Set(results.map((r) => r.accessToken)).size).toBe(1);
    expect(results.some((r) => r.source === 'shared')).toBe(true);
    // A third process arriving later reads the shared token.
    const c = manager(await redisClient());
    let late: { source: string; accessToken: string } | undefined;
    expect(await countRequests(async () => (late = await c.getAccessToken('reports')))).toBe(0);
    expect(late).toMatchObject({ source: 'shared', accessToken: results[0]!.accessToken });
  });

  it('T5: eight managers renewing at once make one token request (lock + re-read)', async () => {
    await deleteRedisPrefix(admin, prefix);
    const managers = await Promise.all(Array.from({ length: 8 }, async () => manager(await redisClient())));
    const requests = await countRequests(() => Promise.all(managers.map((m) => m.getAccessToken('reports'))));
    expect(requests).toBe(1);
  });

  it('tokens are encrypted at rest; another secret cannot read them; T1 no refresh token is stored', async () => {
    const as: FakeServer = await startFakeServer();
    try {
      as.reply = (_r, n) =>
        tokenResponse(`at-secret-${n}`, { refresh_token: 'RT-never-stored', scope: 'read' });
      const options = (secret: string | string[]): TokenManagerOptions => ({
        clients: {
          c: { tokenEndpoint: `${as.url}/token`, clientId: 'c1', clientSecret: 's1', scope: 'read' },
        },
        sharedCache: { redis: admin, keyPrefix: prefix, encryptionSecret: secret },
      });
      const first = await createTokenManager(options(SECRET)).getAccessToken('c');
      const keys = await admin.keys(`${prefix}token:*`);
      const values = await Promise.all(keys.map((k) => admin.get(k)));
      expect(values.length).toBeGreaterThan(0);
      expect(values.join('\n')).not.toContain('at-secret-');
      const key = keys.find((k, i) => new Sealer([SECRET]).open(values[i]!, k)?.includes(first.accessToken));
      expect(key).toBeDefined();
      const stored = JSON.parse(new Sealer([SECRET]).open(values[keys.indexOf(key!)]!, key!)!);
      expect(Object.keys(stored).sort()).toEqual([
        'accessToken',
        'expiresAt',
        'obtainedAt',
        'renewAt',
        'scope',
        'tokenType',
      ]);
      // Rotation: [new, old] still opens entries sealed with the old secret.
      const rotated = createTokenManager(options(['a-brand-new-secret-with-32-characters', SECRET]));
      expect(await rotated.getAccessToken('c')).toMatchObject({
        source: 'shared',
        accessToken: first.accessToken,
      });
      // A manager with another secret cannot open the entry: it gets its own token.
      const other = await createTokenManager(
        options('another-secret-also-32-characters-long'),
      ).getAccessToken('c');
      expect(other).toMatchObject({ source: 'idp' });
      expect(other.accessToken).not.toBe(first.accessToken);
    } finally {
      await as.close();
    }
  });

  it('Redis unreachable (closed port): calls still succeed, per-process cache', async () => {
    const port = await getFreePort();
    const redis = await redisClient(`redis://127.0.0.1:${port}`, false);
    // Never connects (it keeps retrying in the background): the manager must not wait for it.
    void redis.connect().catch(() => {});
    const logger = captureLogger();
    const tokens = manager(redis, { logger });
    const degraded: string[] = [];
    tokens.on('cache.degraded', (e) => degraded.push(e.operation));
    const first = await tokens.getAccessToken('reports');
    expect(first.source).toBe('idp');
    expect(await countRequests(() => tokens.getAccessToken('reports'))).toBe(0);
    expect(degraded.length).toBeGreaterThan(0);
    expect(logger.lines.filter((l) => l.includes('shared cache unavailable'))).toHaveLength(1);
    await redis.destroy();
  });

  it('Redis stopped mid-way (connection killed, then the proxy gone): calls still succeed', async () => {
    const proxy = await startRedisProxy();
    const redis = await redisClient(proxy.url);
    const tokens = manager(redis, {}, 0.2);
    await tokens.getAccessToken('reports', { scope: 'api.reports' });
    // Kill this client's connection from the server side, as a Redis restart would.
    const id = await redis.clientId();
    await admin.sendCommand(['CLIENT', 'KILL', 'ID', String(id)]);
    await expect(tokens.getAccessToken('reports', { forceRenewal: true })).resolves.toMatchObject({
      source: 'idp',
    });
    // Now Redis disappears for good.
    await proxy.cut();
    const started = performance.now();
    for (let i = 0; i < 3; i++) {
      await expect(tokens.getAccessToken('reports', { forceRenewal: true })).resolves.toMatchObject({
        source: 'idp',
      });
    }
    expect(performance.now() - started).toBeLessThan(3000);
  });

  it('Redis that stops answering (stalled socket): calls succeed after the command timeout', async () => {
    const proxy = await startRedisProxy();
    const redis = await redisClient(proxy.url);
    const tokens = manager(redis, {}, 0.2);
    await tokens.getAccessToken('reports');
    proxy.stall();
    const started = performance.now();
    await expect(tokens.getAccessToken('reports', { forceRenewal: true })).resolves.toMatchObject({
      source: 'idp',
    });
    // get + set each give up after commandTimeout (0.2 s); nothing waits for Redis forever (the
    // bound is loose for loaded CI machines; without the deadline this call would never finish).
    expect(performance.now() - started).toBeLessThan(3000);
    await proxy.cut();
  });

  it('T8: a token one process saw rejected is replaced once for every process', async () => {
    await deleteRedisPrefix(admin, prefix);
    const a = manager(await redisClient());
    const b = manager(await redisClient());
    const old = await a.getAccessToken('reports');
    expect((await b.getAccessToken('reports')).accessToken).toBe(old.accessToken);
    let renewedA: string | undefined;
    let renewedB: string | undefined;
    const requests = await countRequests(async () => {
      renewedA = (await a.renewAccessToken('reports', old.accessToken)).accessToken;
      renewedB = (await b.renewAccessToken('reports', old.accessToken)).accessToken;
    });
    expect(requests).toBe(1);
    expect(renewedA).not.toBe(old.accessToken);
    expect(renewedB).toBe(renewedA);
  });
});
