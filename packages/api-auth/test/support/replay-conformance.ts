// The contract every DPoPReplayStore meets (memory, Redis, anything a user writes): each key is
// claimed once while its mark lives, concurrent claims of one key let exactly one through, marks
// expire after their TTL, and keys never collide.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DPoPReplayStore } from '../../src/index.js';

export function replayStoreConformance(
  name: string,
  make: () => Promise<DPoPReplayStore>,
  cleanUp: () => Promise<void> = async () => {},
): void {
  describe(`DPoPReplayStore conformance: ${name}`, () => {
    let store: DPoPReplayStore;
    beforeAll(async () => {
      store = await make();
    });
    afterAll(cleanUp);

    it('A10: the first claim of a key is true, every later one false while the mark lives', async () => {
      const key = randomUUID();
      expect(await store.claimOnce(key, 30)).toBe(true);
      expect(await store.claimOnce(key, 30)).toBe(false);
      expect(await store.claimOnce(key, 30)).toBe(false);
    });

    it('A10: 20 concurrent claims of one key: exactly one is true', async () => {
      const key = randomUUID();
      const results = await Promise.all(Array.from({ length: 20 }, () => store.claimOnce(key, 30)));
      expect(results.filter(Boolean)).toHaveLength(1);
    });

    it('A10: different keys do not collide', async () => {
      const keys = Array.from({ length: 50 }, () => randomUUID());
      const results = await Promise.all(keys.map((key) => store.claimOnce(key, 30)));
      expect(results.every(Boolean)).toBe(true);
    });

    it('A10: a mark expires after its TTL (fractions of a second are honoured)', async () => {
      const key = randomUUID();
      expect(await store.claimOnce(key, 0.3)).toBe(true);
      expect(await store.claimOnce(key, 0.3)).toBe(false);
      await new Promise((resolve) => setTimeout(resolve, 450));
      expect(await store.claimOnce(key, 0.3)).toBe(true);
    });
  });
}
