// The fence around a refresh's write (SECURITY R8). A holder whose refresh lock lapsed must never
// overwrite tokens another holder wrote meanwhile. The lapse and the other holder's write are injected
// by a store wrapper at the exact moment the race needs (a real store cannot lapse a lock on demand
// there); the IdP, its refresh-token rotation and the memory store underneath are real.
import { createMemoryStore, type SessionStore, type StoreLock } from '@gatehouse/bff';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getUser, type Stack, sessionCookie, signIn, startStack } from './support-core/stack.js';

/**
 * A memory store whose next fenced token write finds its lock lapsed (the lock is released and the
 * write refused), after which another holder tries to write `OTHER` the moment this holder reads
 * the session again, if it can get the lock.
 */
function lapsingStore() {
  const inner = createMemoryStore();
  const race = { armed: false, refused: false, otherWrote: false };
  const OTHER = 'sealed-tokens-written-by-another-holder';
  const store: SessionStore = Object.create(inner);
  store.setTokens = async (id: string, sealed: string, fence?: StoreLock) => {
    if (race.armed && fence && !race.refused) {
      race.refused = true;
      await fence.release(); // lapsed: the lock is free now
      return false;
    }
    return inner.setTokens(id, sealed, fence);
  };
  store.get = async (id: string) => {
    const stored = await inner.get(id);
    if (race.refused && !race.otherWrote && race.armed) {
      race.armed = false;
      const other = await inner.lock(`refresh:${id}`, 5);
      if (other) {
        race.otherWrote = await inner.setTokens(id, OTHER, other);
        await other.release();
      }
    }
    return stored;
  };
  return { store, race, OTHER, storedTokens: async (id: string) => (await inner.get(id))?.tokens, inner };
}

describe('R8: the fenced write after a lapsed refresh lock', () => {
  let stack: Stack;
  const lapsing = lapsingStore();
  beforeAll(async () => {
    stack = await startStack({ bffOptions: { store: lapsing.store } });
  });
  afterAll(async () => stack?.close());

  it('R8: a holder whose lock lapsed takes the lock again before it re-reads the session, so a write made by another holder in between is never overwritten', async () => {
    const { browser } = await signIn(stack);
    const cookie = (await sessionCookie(browser, stack))!;
    const [sessionId] = await lapsing.inner.find({ iss: stack.idp.issuer, sub: 'alice' });
    if (!sessionId) throw new Error('no stored session for alice');

    lapsing.race.armed = true;
    stack.clock.advance(400); // the access token has expired: this call refreshes
    const res = await fetch(`${stack.bff.url}/local/whoami`, {
      headers: { cookie: `__Host-bff=${cookie}`, 'x-csrf': '1', 'sec-fetch-site': 'same-origin' },
    });
    expect(lapsing.race.refused).toBe(true);
    // The other holder found the lock taken again (before the re-read), so it could not write; this
    // holder's refresh, from the unspent refresh token, went into the store. Before the fix the other
    // holder wrote between the re-read and the re-lock, and this holder overwrote its tokens.
    expect(lapsing.race.otherWrote).toBe(false);
    expect(res.status).toBe(200);
    expect(await lapsing.storedTokens(sessionId)).not.toBe(lapsing.OTHER);
    expect((await getUser(browser, stack)).status).toBe(200);
  });
});
