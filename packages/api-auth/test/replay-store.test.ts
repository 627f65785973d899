// A10: the DPoP replay caches. Both run the shared conformance suite; Redis is the real server.
import { connectTestRedis, deleteRedisPrefix, requireRedis, uniqueRedisPrefix } from '@gatehouse/testing';
import { describe, expect, it } from 'vitest';
import { createMemoryReplayStore, createRedisReplayStore } from '../src/index.js';
import { replayStoreConformance } from './support/replay-conformance.js';

replayStoreConformance('memory', async () => createMemoryReplayStore());

const redisReady = await requireRedis('api-auth DPoP replay store');
describe.skipIf(!redisReady)('Redis', () => {
  const prefix = uniqueRedisPrefix('api-auth-dpop');
  let client: Awaited<ReturnType<typeof connectTestRedis>>;
  replayStoreConformance(
    'redis',
    async () => {
      client = await connectTestRedis();
      return createRedisReplayStore({ client, prefix });
    },
    async () => {
      await deleteRedisPrefix(client, prefix);
      await client.close();
    },
  );

  it('A10: two API instances sharing Redis: a proof claimed on one is a replay on the other', async () => {
    const [a, b] = [await connectTestRedis(), await connectTestRedis()];
    const shared = uniqueRedisPrefix('api-auth-dpop-shared');
    try {
      const one = createRedisReplayStore({ client: a, prefix: shared });
      const two = createRedisReplayStore({ client: b, prefix: shared });
      expect(await one.claimOnce('proof-1', 30)).toBe(true);
      expect(await two.claimOnce('proof-1', 30)).toBe(false);
      expect(await a.pTTL(`${shared}proof-1`)).toBeGreaterThan(25_000);
    } finally {
      await deleteRedisPrefix(a, shared);
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe('replay store failures and options', () => {
  it('A10: a disconnected Redis client → ERR_API_AUTH_REPLAY_STORE_UNAVAILABLE (503) at once, no queueing', async () => {
    let sent = 0;
    const store = createRedisReplayStore({
      client: {
        isReady: false,
        sendCommand: async () => {
          sent++;
          return 'OK';
        },
      },
    });
    await expect(store.claimOnce('x', 30)).rejects.toMatchObject({
      code: 'ERR_API_AUTH_REPLAY_STORE_UNAVAILABLE',
      status: 503,
    });
    expect(sent).toBe(0);
  });

  it('A10: a Redis command that fails → 503, never a claim', async () => {
    const store = createRedisReplayStore({
      client: { isReady: true, sendCommand: () => Promise.reject(new Error('READONLY')) },
    });
    await expect(store.claimOnce('x', 30)).rejects.toMatchObject({ status: 503 });
  });

  it('the memory store keeps at most maxEntries marks, dropping the oldest first', async () => {
    const store = createMemoryReplayStore({ maxEntries: 2 });
    expect(await store.claimOnce('a', 30)).toBe(true);
    expect(await store.claimOnce('b', 30)).toBe(true);
    expect(await store.claimOnce('c', 30)).toBe(true);
    expect(await store.claimOnce('b', 30)).toBe(false);
    expect(await store.claimOnce('a', 30)).toBe(true);
  });

  it('refuses bad options with a TypeError that says the fix', () => {
    expect(() => createMemoryReplayStore({ maxEntries: 0 })).toThrow(/maxEntries.*positive integer/);
    expect(() => createRedisReplayStore({} as never)).toThrow(/createClient/);
    expect(() =>
      createRedisReplayStore({ client: { isReady: true, sendCommand: async () => 'OK' }, commandTimeout: 0 }),
    ).toThrow(/commandTimeout/);
  });
});
