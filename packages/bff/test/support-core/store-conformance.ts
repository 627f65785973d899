// One conformance suite for every SessionStore implementation (memory, Redis).
import type { SessionStore } from '@gatehouse/bff';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const ISS = 'https://idp.example';

/** Registers the conformance tests for the store `create()` returns (a fresh, empty store). */
export function storeConformance(
  name: string,
  create: () => Promise<SessionStore>,
  dispose?: () => Promise<void>,
) {
  describe(`SessionStore conformance: ${name}`, () => {
    let store: SessionStore;
    beforeAll(async () => {
      store = await create();
    });
    afterAll(async () => {
      await store?.close?.();
      await dispose?.();
    });

    it('S5: unknown ids read as undefined', async () => {
      expect(await store.get('nope')).toBeUndefined();
      expect(await store.find({ iss: ISS, sub: 'nobody' })).toEqual([]);
    });

    it('set/get round trip; a later data write keeps the tokens; setTokens replaces them atomically', async () => {
      expect(
        await store.set(
          'a1',
          { data: '{"n":1}', index: { iss: ISS, sub: 'alice', sid: 's1' }, tokens: 'T1' },
          60,
        ),
      ).toBe(true);
      expect(await store.get('a1')).toEqual({ data: '{"n":1}', tokens: 'T1' });
      expect(
        await store.set(
          'a1',
          { data: '{"n":2}', index: { iss: ISS, sub: 'alice', sid: 's1' }, update: true },
          60,
        ),
      ).toBe(true);
      expect(await store.get('a1')).toEqual({ data: '{"n":2}', tokens: 'T1' });
      expect(await store.setTokens('a1', 'T2')).toBe(true);
      expect(await store.get('a1')).toEqual({ data: '{"n":2}', tokens: 'T2' });
    });

    it('update writes and token writes never resurrect a destroyed session', async () => {
      await store.set('gone', { data: '{}', index: { iss: ISS, sub: 'ghost' } }, 60);
      await store.destroy('gone');
      expect(
        await store.set('gone', { data: '{}', index: { iss: ISS, sub: 'ghost' }, update: true }, 60),
      ).toBe(false);
      expect(await store.setTokens('gone', 'T')).toBe(false);
      expect(await store.get('gone')).toBeUndefined();
      expect(await store.find({ iss: ISS, sub: 'ghost' })).toEqual([]);
    });

    it('B4 index: find by (iss, sub), (iss, sid), (iss, sid, sub); other issuers never match', async () => {
      await store.set('b1', { data: '{}', index: { iss: ISS, sub: 'bob', sid: 'sid-1' } }, 60);
      await store.set('b2', { data: '{}', index: { iss: ISS, sub: 'bob', sid: 'sid-2' } }, 60);
      await store.set(
        'b3',
        { data: '{}', index: { iss: 'https://other.example', sub: 'bob', sid: 'sid-1' } },
        60,
      );
      expect((await store.find({ iss: ISS, sub: 'bob' })).sort()).toEqual(['b1', 'b2']);
      expect(await store.find({ iss: ISS, sid: 'sid-1' })).toEqual(['b1']);
      expect(await store.find({ iss: ISS, sid: 'sid-1', sub: 'bob' })).toEqual(['b1']);
      expect(await store.find({ iss: ISS, sid: 'sid-1', sub: 'carol' })).toEqual([]);
      expect(await store.find({ iss: ISS })).toEqual([]);
      await store.destroy('b1');
      expect(await store.find({ iss: ISS, sub: 'bob' })).toEqual(['b2']);
      expect(await store.find({ iss: ISS, sid: 'sid-1' })).toEqual([]);
    });

    it('S4: sessions expire after their TTL (and leave the index)', async () => {
      await store.set('short', { data: '{}', index: { iss: ISS, sub: 'dave' } }, 1);
      expect(await store.get('short')).toBeDefined();
      await sleep(1100);
      expect(await store.get('short')).toBeUndefined();
      expect(await store.find({ iss: ISS, sub: 'dave' })).toEqual([]);
    });

    it('claimOnce is true exactly once per key until it expires', async () => {
      const claims = await Promise.all(Array.from({ length: 10 }, () => store.claimOnce('jti-1', 1)));
      expect(claims.filter(Boolean)).toHaveLength(1);
      expect(await store.claimOnce('jti-2', 1)).toBe(true);
      await sleep(1100);
      expect(await store.claimOnce('jti-1', 1)).toBe(true);
    });

    it('B2 S6: a jti mark is never forgotten before its TTL, however many login-state marks follow; the flood itself is never refused', async () => {
      // The BFF's keys: back-channel logout jti marks (only the OP can make them) and login-state marks
      // (anyone can make one per callback with a fresh transaction cookie from /bff/login).
      const jti = `once:backchannel:jti:${ISS}:jti-kept`;
      expect(await store.claimOnce(jti, 60)).toBe(true);
      // More than the memory store's default bound (10 000 marks per purpose).
      const flood = await Promise.all(
        Array.from({ length: 10_050 }, (_, i) => store.claimOnce(`login-state:flood-${i}`, 60)),
      );
      expect(flood.every((claimed) => claimed)).toBe(true);
      expect(await store.claimOnce(jti, 60)).toBe(false);
    });

    it('P7: consumeRate is a token bucket: `capacity` calls at once, then refusals with retryAfter; refills; keys are separate', async () => {
      const consume = (key: string) => {
        if (!store.consumeRate) throw new Error('the store has no consumeRate');
        return store.consumeRate(key, 5, 2);
      };
      // Concurrent calls: the bucket is taken atomically, never more than its capacity.
      const burst = await Promise.all(Array.from({ length: 8 }, () => consume('rate-a')));
      expect(burst.filter((d) => d.allowed)).toHaveLength(5);
      for (const d of burst.filter((d) => d.allowed)) expect(d.retryAfter).toBe(0);
      const refused = burst.filter((d) => !d.allowed);
      expect(refused).toHaveLength(3);
      // 2 calls per second: the next call is at most 0.5 s away (a little less once time has passed).
      for (const d of refused) {
        expect(d.retryAfter).toBeGreaterThan(0);
        expect(d.retryAfter).toBeLessThanOrEqual(0.5);
      }
      expect((await consume('rate-b')).allowed).toBe(true);
      await sleep(Math.ceil((refused[0]?.retryAfter ?? 0.5) * 1000) + 100);
      expect((await consume('rate-a')).allowed).toBe(true);
    });

    it('R2: a lock has one holder; release frees it; a stale holder cannot release a newer lock', async () => {
      const locks = await Promise.all(Array.from({ length: 10 }, () => store.lock('l1', 1)));
      const held = locks.filter((l) => l !== undefined);
      expect(held).toHaveLength(1);
      await held[0]!.release();
      const second = await store.lock('l1', 1);
      expect(second).toBeDefined();
      await sleep(1100); // second expires
      const third = await store.lock('l1', 30);
      expect(third).toBeDefined();
      await second!.release(); // stale: must not free third's lock
      expect(await store.lock('l1', 30)).toBeUndefined();
      await third!.release();
      expect(await store.lock('l1', 30)).toBeDefined();
    });

    it('R8: a lock can be extended while held; a holder whose lock expired can neither extend nor release it', async () => {
      const lock = await store.lock('l2', 1);
      expect(lock).toBeDefined();
      expect(typeof lock!.token).toBe('string');
      expect(lock!.key).toBe('l2');
      await sleep(600);
      expect(await lock!.extend(2)).toBe(true); // now 2 s from here
      await sleep(700); // past the original 1 s
      expect(await store.lock('l2', 30)).toBeUndefined();
      await sleep(1500); // past the extension
      expect(await lock!.extend(30)).toBe(false);
      const next = await store.lock('l2', 30);
      expect(next).toBeDefined();
      expect(next!.token).not.toBe(lock!.token);
      expect(await lock!.extend(30)).toBe(false); // the stale holder cannot take it over
      await next!.release();
    });

    it('R8: setTokens with a fence writes only while that lock is held by that holder', async () => {
      await store.set('f1', { data: '{}', index: { iss: ISS, sub: 'erin' }, tokens: 'T0' }, 60);
      const lock = await store.lock('refresh:f1', 1);
      expect(lock).toBeDefined();
      const fence = { key: lock!.key, token: lock!.token };
      expect(await store.setTokens('f1', 'T1', fence)).toBe(true);
      expect((await store.get('f1'))?.tokens).toBe('T1');
      await sleep(1100); // the lock expired: its holder must not write any more
      expect(await store.setTokens('f1', 'T-stale', fence)).toBe(false);
      const newer = await store.lock('refresh:f1', 30);
      expect(newer).toBeDefined();
      expect(await store.setTokens('f1', 'T-stale', fence)).toBe(false);
      expect(await store.setTokens('f1', 'T2', { key: newer!.key, token: newer!.token })).toBe(true);
      expect((await store.get('f1'))?.tokens).toBe('T2');
      await newer!.release();
      // A released lock fences too; without a fence the write is unconditional (login, migration).
      expect(await store.setTokens('f1', 'T-late', { key: newer!.key, token: newer!.token })).toBe(false);
      expect(await store.setTokens('f1', 'T3')).toBe(true);
      expect((await store.get('f1'))?.tokens).toBe('T3');
      // A fenced write still never resurrects a destroyed session.
      const again = await store.lock('refresh:f1', 30);
      await store.destroy('f1');
      expect(await store.setTokens('f1', 'T4', { key: again!.key, token: again!.token })).toBe(false);
      expect(await store.get('f1')).toBeUndefined();
      await again!.release();
    });
  });
}
