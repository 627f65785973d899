import { createMemoryStore, createRedisStore } from '@gatehouse/bff';
import { connectTestRedis, deleteRedisPrefix, requireRedis, uniqueRedisPrefix } from '@gatehouse/testing';
import { describe, expect, it } from 'vitest';
import { storeConformance } from './support-core/store-conformance.js';

storeConformance('memory', async () => createMemoryStore());

const redisReady = await requireRedis('bff Redis session store');
describe.skipIf(!redisReady)('Redis', () => {
  const prefix = uniqueRedisPrefix('bff-store');
  let client: Awaited<ReturnType<typeof connectTestRedis>>;
  storeConformance(
    'redis',
    async () => {
      client = await connectTestRedis();
      return createRedisStore({ client, prefix });
    },
    async () => {
      await deleteRedisPrefix(client, prefix);
      await client.close();
    },
  );
});

describe('memory store bounds', () => {
  it('evicts the least recently used session beyond maxSessions', async () => {
    const store = createMemoryStore({ maxSessions: 2 });
    await store.set('a', { data: 'A' }, 60);
    await store.set('b', { data: 'B' }, 60);
    await store.get('a'); // a is now more recent than b
    await store.set('c', { data: 'C' }, 60);
    expect(await store.get('b')).toBeUndefined();
    expect((await store.get('a'))?.data).toBe('A');
    expect((await store.get('c'))?.data).toBe('C');
    await store.close?.();
  });

  it('rejects nonsense bounds with a TypeError that says the fix', () => {
    expect(() => createMemoryStore({ maxSessions: 0 })).toThrow(/maxSessions.*positive integer/);
  });
});

describe('createRedisStore', () => {
  it('refuses a missing client with a TypeError that says the fix', () => {
    expect(() => createRedisStore({} as never)).toThrow(/createClient/);
  });

  it('fails fast with BffError ERR_BFF_STORE_UNAVAILABLE (503) while the client is not connected (no queueing)', async () => {
    const store = createRedisStore({ client: { isReady: false, sendCommand: async () => 'OK' } });
    await expect(store.get('x')).rejects.toMatchObject({ code: 'ERR_BFF_STORE_UNAVAILABLE', status: 503 });
  });
});
