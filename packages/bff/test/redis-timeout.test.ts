// The Redis store's per-command deadline (a plain timer, not node-redis's AbortSignal-based option): a
// Redis that takes a command and never answers must give ERR_BFF_STORE_UNAVAILABLE (503) within
// `commandTimeout`, never hang the call. A real Redis cannot be frozen on demand here (it is shared),
// so a client that never answers stands in for it.
import { BffError, createRedisStore } from '@gatehouse/bff';
import { describe, expect, it } from 'vitest';

describe('Redis store command deadline', () => {
  it('a command Redis never answers fails with ERR_BFF_STORE_UNAVAILABLE after commandTimeout', async () => {
    const sent: string[] = [];
    const store = createRedisStore({
      client: {
        isReady: true,
        sendCommand: (args: readonly string[]) => {
          sent.push(args[0] ?? '');
          return new Promise<unknown>(() => {}); // swallowed by a hung server
        },
      },
      commandTimeout: 0.2,
    });
    const started = performance.now();
    const outcome = await store.get('s1').catch((err: unknown) => err);
    const elapsed = performance.now() - started;
    expect(outcome).toBeInstanceOf(BffError);
    expect((outcome as BffError).code).toBe('ERR_BFF_STORE_UNAVAILABLE');
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(1500);
    const rate = await store.consumeRate?.('k', 5, 1).catch((err: unknown) => err);
    expect((rate as BffError).code).toBe('ERR_BFF_STORE_UNAVAILABLE');
    expect(sent).toEqual(['HMGET', 'EVALSHA']);
  });

  it('a client that throws or is not ready fails the same way, at once', async () => {
    const thrower = createRedisStore({
      client: {
        isReady: true,
        sendCommand: () => {
          throw new Error('socket closed');
        },
      },
    });
    expect(await thrower.get('s1').catch((err: unknown) => (err as BffError).code)).toBe(
      'ERR_BFF_STORE_UNAVAILABLE',
    );
    const down = createRedisStore({ client: { isReady: false, sendCommand: async () => 'OK' } });
    expect(await down.get('s1').catch((err: unknown) => (err as BffError).code)).toBe(
      'ERR_BFF_STORE_UNAVAILABLE',
    );
  });
});
