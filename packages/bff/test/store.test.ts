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

  it('B2 S6: login-state marks beyond maxEntries never evict a back-channel logout jti mark (its replay stays refused)', async () => {
    const store = createMemoryStore({ maxEntries: 3 });
    const jti = 'once:backchannel:jti:https://idp.example:jti-1';
    expect(await store.claimOnce(jti, 60)).toBe(true);
    await Promise.allSettled(Array.from({ length: 5 }, (_, i) => store.claimOnce(`login-state:${i}`, 60)));
    expect(await store.claimOnce(jti, 60)).toBe(false);
    await store.close?.();
  });

  it('B2 L4 S6: a purpose at its bound refuses a new mark (rejects) and forgets none of its unexpired ones; expired ones make room', async () => {
    let now = Date.now();
    const store = createMemoryStore({ maxEntries: 2, clock: () => now });
    const jti = (n: number) => `once:backchannel:jti:https://idp.example:jti-${n}`;
    expect(await store.claimOnce(jti(1), 60)).toBe(true);
    expect(await store.claimOnce(jti(2), 30)).toBe(true);
    await expect(store.claimOnce(jti(3), 60)).rejects.toThrow(/single-use marks/);
    expect(await store.claimOnce(jti(1), 60)).toBe(false);
    expect(await store.claimOnce(jti(2), 60)).toBe(false);
    // Other purposes have bounds of their own; login states forget their oldest instead of refusing.
    for (const n of [1, 2, 3]) expect(await store.claimOnce(`login-state:${n}`, 60)).toBe(true);
    expect(await store.claimOnce('login-state:3', 60)).toBe(false);
    expect(await store.claimOnce('login-state:1', 60)).toBe(true); // forgotten: the OP's codes guard it
    expect(await store.claimOnce('once:extension-mark', 60)).toBe(true);
    now += 31_000; // jti-2 expired: its place is free again, jti-1 is still remembered
    expect(await store.claimOnce(jti(3), 60)).toBe(true);
    expect(await store.claimOnce(jti(1), 60)).toBe(false);
    await expect(store.claimOnce(jti(4), 60)).rejects.toThrow(/single-use marks/);
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
