// Transparent refresh on one instance (memory store): single-flight, rotation, invalid_grant,
// transient failures, refreshed ID token validation. The IdP is real; faults are injected by the tap.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  assertNoSecrets,
  getUser,
  jsonResponse,
  SESSION_SECRET,
  type Stack,
  sessionCookie,
  signIn,
  startStack,
} from './support-core/stack.js';

describe('refresh (memory store)', () => {
  let stack: Stack;
  const bodies: string[] = [];
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    // S3: no issued token and no secret in any response body or log line of this suite.
    assertNoSecrets([...bodies, ...stack.logger.lines].join('\n'), [
      ...stack.tap.tokens,
      SESSION_SECRET,
      'bff-secret',
    ]);
    await stack?.close();
  });

  const whoami = async (cookie: string) => {
    const res = await fetch(`${stack.bff.url}/local/whoami`, {
      headers: { cookie: `__Host-bff=${cookie}`, 'x-csrf': '1', 'sec-fetch-site': 'same-origin' },
    });
    const text = await res.text();
    bodies.push(text, JSON.stringify([...res.headers]));
    return { status: res.status, body: text };
  };

  it('R2 R3: 50 concurrent calls with an expired token → exactly 1 refresh, 50 successes, rotation kept working', async () => {
    const { browser } = await signIn(stack);
    const cookie = (await sessionCookie(browser, stack))!;
    expect((await whoami(cookie)).status).toBe(200);
    expect(stack.idp.counters.token('refresh_token')).toBe(0);

    for (let round = 1; round <= 2; round++) {
      stack.clock.advance(400); // past the 300 s access-token lifetime (+ margin)
      const before = stack.idp.counters.token('refresh_token');
      const results = await Promise.all(Array.from({ length: 50 }, () => whoami(cookie)));
      expect(results.map((r) => r.status)).toEqual(Array(50).fill(200));
      // Round 2 succeeds only if round 1 stored the rotated refresh token (reusing the old one revokes the grant).
      expect(stack.idp.counters.token('refresh_token') - before).toBe(1);
    }
    expect((await getUser(browser, stack)).status).toBe(200);
  });

  /** Passes the IdP's real token responses through with another `expires_in` (the JWT keeps its exp). */
  const overrideExpiresIn = (seconds: number) => {
    stack.tap.intercept = async (url, init) => {
      if (url.pathname !== '/token') return undefined;
      const json = (await (await fetch(url, init)).json()) as Record<string, unknown>;
      return jsonResponse({ ...json, expires_in: seconds });
    };
  };

  it('R1: refresh follows the stored expires_in, not the JWT exp', async () => {
    const { browser } = await signIn(stack);
    const cookie = (await sessionCookie(browser, stack))!;
    overrideExpiresIn(61); // JWT exp stays 300 s; margin is 60 s
    try {
      stack.clock.advance(400);
      expect((await whoami(cookie)).status).toBe(200);
      const before = stack.idp.counters.token('refresh_token');
      // The 61 s token is past half its lifetime (the margin of a token shorter than twice the 60 s
      // margin) although its JWT exp is far away. Still valid, so the call goes on with it and one
      // background refresh replaces it (R7).
      stack.clock.advance(31);
      expect((await whoami(cookie)).status).toBe(200);
      await vi.waitFor(() => expect(stack.idp.counters.token('refresh_token') - before).toBe(1));
    } finally {
      stack.tap.intercept = undefined;
    }
  });

  it('R1: a token living less than twice the margin is refreshed at half its lifetime, not on every call', async () => {
    const { browser } = await signIn(stack);
    const cookie = (await sessionCookie(browser, stack))!;
    overrideExpiresIn(20); // shorter than the 60 s margin
    try {
      stack.clock.advance(400);
      expect((await whoami(cookie)).status).toBe(200); // refreshed: now a 20 s token
      const before = stack.idp.counters.token('refresh_token');
      stack.clock.advance(5);
      expect((await whoami(cookie)).status).toBe(200);
      expect((await whoami(cookie)).status).toBe(200);
      expect(stack.idp.counters.token('refresh_token') - before).toBe(0);
      stack.clock.advance(6); // 11 s of 20: past half its lifetime (still valid: refreshed in the background)
      expect((await whoami(cookie)).status).toBe(200);
      await vi.waitFor(() => expect(stack.idp.counters.token('refresh_token') - before).toBe(1));
    } finally {
      stack.tap.intercept = undefined;
    }
  });

  it('R5: transient IdP failure → 503, at most 3 attempts, session kept, recovers', async () => {
    const { browser } = await signIn(stack);
    const cookie = (await sessionCookie(browser, stack))!;
    stack.clock.advance(400);
    let attempts = 0;
    stack.tap.intercept = (url, init) => {
      const grant = init?.body instanceof URLSearchParams ? init.body.get('grant_type') : undefined;
      if (url.pathname === '/token' && grant === 'refresh_token') {
        attempts++;
        return jsonResponse({ error: 'temporarily_unavailable' }, 503);
      }
      return undefined;
    };
    try {
      const res = await whoami(cookie);
      expect(res.status).toBe(503);
      expect(JSON.parse(res.body)).toMatchObject({ status: 503, error: 'ERR_BFF_IDP_UNAVAILABLE' });
      expect(attempts).toBeGreaterThanOrEqual(1);
      expect(attempts).toBeLessThanOrEqual(3);
    } finally {
      stack.tap.intercept = undefined;
    }
    expect((await getUser(browser, stack)).status).toBe(200);
    stack.clock.advance(15); // past the session's back-off after the failed refresh (R7)
    expect((await whoami(cookie)).status).toBe(200);
  });

  it('R5: the IdP unreachable (connection refused) → 503, session kept', async () => {
    const { browser } = await signIn(stack);
    const cookie = (await sessionCookie(browser, stack))!;
    stack.clock.advance(400);
    stack.tap.intercept = (url) => {
      if (url.pathname === '/token') throw new TypeError('fetch failed');
      return undefined;
    };
    try {
      expect((await whoami(cookie)).status).toBe(503);
    } finally {
      stack.tap.intercept = undefined;
    }
    expect((await getUser(browser, stack)).status).toBe(200);
  });

  it('R4: invalid_grant → 401 and the session is gone from the store', async () => {
    const { browser } = await signIn(stack, 'bob');
    const cookie = (await sessionCookie(browser, stack))!;
    expect(await stack.bff.app.bff.sessions.list({ iss: stack.idp.issuer, sub: 'bob' })).toHaveLength(1);
    stack.clock.advance(400);
    stack.tap.intercept = (url) =>
      url.pathname === '/token'
        ? jsonResponse({ error: 'invalid_grant', error_description: 'grant revoked' }, 400)
        : undefined;
    try {
      const res = await whoami(cookie);
      expect(res.status).toBe(401);
      expect(JSON.parse(res.body)).toEqual({ error: 'ERR_BFF_SESSION_ENDED' });
    } finally {
      stack.tap.intercept = undefined;
    }
    expect(await stack.bff.app.bff.sessions.list({ iss: stack.idp.issuer, sub: 'bob' })).toHaveLength(0);
    expect((await getUser(browser, stack)).status).toBe(401);
  });

  it('R6: a refreshed ID token for another sub ends the session (401)', async () => {
    const { browser } = await signIn(stack);
    const cookie = (await sessionCookie(browser, stack))!;
    stack.clock.advance(400);
    stack.tap.intercept = async (url, init) => {
      if (url.pathname !== '/token') return undefined;
      const real = await fetch(url, init);
      const json = (await real.json()) as Record<string, unknown>;
      const now = Math.floor(Date.now() / 1000);
      const idToken = await stack.idp.sign({
        iss: stack.idp.issuer,
        sub: 'mallory',
        aud: 'bff',
        iat: now,
        exp: now + 300,
      });
      return jsonResponse({ ...json, id_token: idToken });
    };
    try {
      const res = await whoami(cookie);
      expect(res.status).toBe(401);
      expect(JSON.parse(res.body)).toEqual({ error: 'ERR_BFF_SESSION_ENDED' });
    } finally {
      stack.tap.intercept = undefined;
    }
    expect((await getUser(browser, stack)).status).toBe(401);
  });
});
