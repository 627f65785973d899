// A host's own session store that fails: whatever it throws, the BFF answers 503
// ERR_BFF_STORE_UNAVAILABLE (the store contract), never a 500, and nothing is lost once it recovers.
import { createMemoryStore, type SessionStore } from '@gatehouse/bff';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getUser, type Stack, sessionCookie, signIn, startStack } from './support-core/stack.js';

/** A working memory store that rejects every call with a plain Error while `down` is set. */
function flakyStore(): SessionStore & { down: boolean } {
  const inner = createMemoryStore();
  const flaky = { down: false } as SessionStore & { down: boolean };
  for (const key of Object.keys(inner) as Array<keyof SessionStore>) {
    const member = inner[key];
    if (typeof member !== 'function') continue;
    Object.assign(flaky, {
      [key]: (...args: unknown[]) =>
        flaky.down
          ? Promise.reject(new Error('custom store: connection refused'))
          : (member as (...a: unknown[]) => Promise<unknown>).apply(inner, args),
    });
  }
  return Object.assign(flaky, { kind: inner.kind });
}

describe('a custom session store that fails', () => {
  let stack: Stack;
  const store = flakyStore();
  beforeAll(async () => {
    stack = await startStack({ bffOptions: { store } });
  });
  afterAll(async () => {
    store.down = false;
    await stack?.close();
  });

  it('S5 R5: a plain Error from the store → 503 ERR_BFF_STORE_UNAVAILABLE + Retry-After on the local API, the session API and the admin list; the session survives', async () => {
    const { browser } = await signIn(stack);
    const cookie = (await sessionCookie(browser, stack))!;
    const whoami = () =>
      fetch(`${stack.bff.url}/local/whoami`, {
        headers: { cookie: `__Host-bff=${cookie}`, 'x-csrf': '1', 'sec-fetch-site': 'same-origin' },
      });
    expect((await whoami()).status).toBe(200);

    store.down = true;
    const local = await whoami();
    expect(local.status).toBe(503);
    expect(local.headers.get('retry-after')).toBe('1');
    expect(await local.json()).toMatchObject({ status: 503, error: 'ERR_BFF_STORE_UNAVAILABLE' });
    const user = await getUser(browser, stack);
    expect(user.status).toBe(503);
    await expect(
      stack.bff.app.bff.sessions.list({ iss: stack.idp.issuer, sub: 'alice' }),
    ).rejects.toMatchObject({
      code: 'ERR_BFF_STORE_UNAVAILABLE',
      status: 503,
    });

    store.down = false;
    expect((await whoami()).status).toBe(200);
    expect((await getUser(browser, stack)).status).toBe(200);
  });
});
