import { randomBytes } from 'node:crypto';
import { createClient, type RedisClientType } from 'redis';

/** The Redis the tests use: `REDIS_URL`, default `redis://127.0.0.1:6379`. */
export const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** True when the tests run in CI, where nothing that needs Redis or Chromium may be skipped. */
export const inCI = Boolean(process.env.CI) && process.env.CI !== 'false' && process.env.CI !== '0';

let probe: Promise<boolean> | undefined;

/** Whether a Redis server answers PING at {@link redisUrl} (checked once per process). */
export function isRedisAvailable(): Promise<boolean> {
  probe ??= (async () => {
    const client = createClient({
      url: redisUrl,
      socket: { connectTimeout: 1000, reconnectStrategy: false },
    });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.ping();
      return true;
    } catch {
      return false;
    } finally {
      await client.close().catch(() => {});
    }
  })();
  return probe;
}

/**
 * Decides whether a Redis-backed suite runs. Outside CI a missing Redis skips the suite and says so
 * loudly on stderr; under `CI=true` a missing Redis is an error, never a silent skip.
 *
 * Use as: `const redisReady = await requireRedis('token cache'); describe.skipIf(!redisReady)(…)`.
 */
export async function requireRedis(suite: string): Promise<boolean> {
  if (await isRedisAvailable()) return true;
  if (inCI) throw new Error(`Redis is required for "${suite}" under CI but ${redisUrl} does not answer`);
  console.warn(
    `\n!!! SKIPPING "${suite}": no Redis at ${redisUrl}. Start one (redis-server) or set REDIS_URL. CI never skips this.\n`,
  );
  return false;
}

/** A key prefix unique to one test run, so parallel test files never share Redis keys. */
export function uniqueRedisPrefix(label: string): string {
  return `gatehouse-test:${label}:${randomBytes(6).toString('hex')}:`;
}

/** A connected node-redis client for tests; close it in `afterAll`. */
export async function connectTestRedis(): Promise<RedisClientType> {
  const client: RedisClientType = createClient({ url: redisUrl, disableClientInfo: true });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** Deletes every key under `prefix` (test clean-up). */
export async function deleteRedisPrefix(client: RedisClientType, prefix: string): Promise<void> {
  for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) {
    if (keys.length > 0) await client.del(keys);
  }
}
