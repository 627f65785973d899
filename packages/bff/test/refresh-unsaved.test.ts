// A refresh that the OP answered but the session store could not take (Redis died between the token
// request and the write, as in the fault suite's Redis kill). The OP has rotated the refresh token, so
// the old one in the store is spent: sending it again would be refused (invalid_grant) and the user
// signed out for good. The BFF keeps the rotated tokens in process and writes them once the store is
// back (SECURITY R3, R5, R8). The store fault is injected by a wrapper (a real store cannot fail at this
// exact moment on demand); the IdP, the tokens and the rotation are real.
import { createMemoryStore, type SessionStore } from '@gatehouse/bff';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertNoSecrets,
  getUser,
  SESSION_SECRET,
  type Stack,
  sessionCookie,
  signIn,
  startStack,
} from './support-core/stack.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A memory store that rejects every call while `down` is set, and exposes the stored tokens. */
function flakyStore() {
  const inner = createMemoryStore();
  const state = { down: false };
  const flaky = { kind: inner.kind } as SessionStore;
  for (const key of Object.keys(inner) as Array<keyof SessionStore>) {
    const member = inner[key];
    if (typeof member !== 'function') continue;
    Object.assign(flaky, {
      [key]: (...args: unknown[]) =>
        state.down
          ? Promise.reject(new Error('store: connection lost'))
          : (member as (...a: unknown[]) => Promise<unknown>).apply(inner, args),
    });
  }
  return {
    store: flaky,
    state,
    sessionIds: (iss: string, sub: string) => inner.find({ iss, sub }),
    storedTokens: async (id: string) => (await inner.get(id))?.tokens,
  };
}

describe('a refresh whose tokens the store could not take', () => {
  let stack: Stack;
  const flaky = flakyStore();
  const bodies: string[] = [];
  beforeAll(async () => {
    stack = await startStack({ bffOptions: { store: flaky.store } });
  });
  afterAll(async () => {
    flaky.state.down = false;
    assertNoSecrets([...bodies, ...stack.logger.lines].join('\n'), [...stack.tap.tokens, SESSION_SECRET]);
    await stack?.close();
  });

  const whoami = async (cookie: string) => {
    const res = await fetch(`${stack.bff.url}/local/whoami`, {
      headers: { cookie: `__Host-bff=${cookie}`, 'x-csrf': '1', 'sec-fetch-site': 'same-origin' },
    });
    const body = await res.text();
    bodies.push(body);
    return { status: res.status, body };
  };

  it('R3 R5 R8: the store fails right after the OP rotated the refresh token → the call still gets the new token, the rotated tokens are written once the store is back, the next refresh works and the session survives', async () => {
    const { browser } = await signIn(stack);
    const cookie = (await sessionCookie(browser, stack))!;
    expect((await whoami(cookie)).status).toBe(200);

    // The store goes down the moment the OP's refresh answer passes: the write that follows fails.
    let refreshes = 0;
    stack.tap.intercept = async (url, init) => {
      if (url.pathname !== '/token' || !String(init?.body).includes('grant_type=refresh_token'))
        return undefined;
      const response = await fetch(url, init);
      refreshes++;
      flaky.state.down = true;
      return response;
    };
    const [sessionId] = await flaky.sessionIds(stack.idp.issuer, 'alice');
    if (!sessionId) throw new Error('no stored session for alice');
    const before = await flaky.storedTokens(sessionId);
    expect(before).toBeTruthy();

    stack.clock.advance(400); // past the access token's lifetime: this call must wait for a refresh
    const during = await whoami(cookie);
    expect(during.status, during.body).toBe(200);
    expect(refreshes).toBe(1);
    expect(stack.logger.lines.join('\n')).toMatch(/could not be stored/);

    // While the store is down, nothing can be loaded: 503, not 401.
    const down = await whoami(cookie);
    expect(down.status).toBe(503);
    expect(JSON.parse(down.body)).toMatchObject({ error: 'ERR_BFF_STORE_UNAVAILABLE' });

    flaky.state.down = false;
    stack.tap.intercept = undefined;
    // Written behind: the stored record changes to the rotated one without any request.
    const deadline = Date.now() + 3000;
    while ((await flaky.storedTokens(sessionId)) === before && Date.now() < deadline) await sleep(50);
    expect(await flaky.storedTokens(sessionId)).not.toBe(before);

    // The next refresh presents the rotated refresh token; the spent one would end the session.
    const refreshesBefore = stack.idp.counters.token('refresh_token');
    stack.clock.advance(400);
    const after = await whoami(cookie);
    expect(after.status, after.body).toBe(200);
    expect(stack.idp.counters.token('refresh_token') - refreshesBefore).toBe(1);
    expect((await getUser(browser, stack)).status).toBe(200);
  });

  it('R3 R5: a request that arrives after the store is back but before the write-behind uses the rotated tokens, never the spent refresh token', async () => {
    const { browser } = await signIn(stack, 'bob');
    const cookie = (await sessionCookie(browser, stack))!;
    stack.tap.intercept = async (url, init) => {
      if (url.pathname !== '/token' || !String(init?.body).includes('grant_type=refresh_token'))
        return undefined;
      const response = await fetch(url, init);
      flaky.state.down = true;
      return response;
    };
    stack.clock.advance(400);
    expect((await whoami(cookie)).status).toBe(200);
    stack.tap.intercept = undefined;
    // Back up, and at once the rotated token has expired too: this request must refresh with it.
    flaky.state.down = false;
    stack.clock.advance(400);
    const after = await whoami(cookie);
    expect(after.status, after.body).toBe(200);
    expect((await getUser(browser, stack)).status).toBe(200);
  });
});
