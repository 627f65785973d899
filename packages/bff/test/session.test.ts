// Session cookie and store (S1–S5), CSRF and cross-origin (X1–X3), /bff/user sliding, diagnostics.
import { createMemoryStore, type SessionStore } from '@gatehouse/bff';
import { TestBrowser } from '@gatehouse/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomId } from '../src/lib/crypto.js';
import {
  assertNoSecrets,
  getUser,
  SESSION_SECRET,
  type Stack,
  sessionCookie,
  signIn,
  startStack,
} from './support-core/stack.js';

/** A memory store that also records every value written (to look for plaintext tokens). */
function recordingStore() {
  const inner = createMemoryStore();
  const written: string[] = [];
  const store: SessionStore = {
    ...inner,
    kind: inner.kind,
    set: (id, value, ttl) => {
      written.push(value.data, value.tokens ?? '');
      return inner.set(id, value, ttl);
    },
    setTokens: (id, tokens) => {
      written.push(tokens);
      return inner.setTokens(id, tokens);
    },
  };
  return { store, written };
}

describe('sessions', () => {
  let stack: Stack;
  const recorder = recordingStore();
  beforeAll(async () => {
    stack = await startStack({
      bffOptions: {
        idleTimeout: 600,
        absoluteTimeout: 1500,
        touchInterval: 60,
        store: recorder.store,
        diagnostics: true,
      },
    });
  });
  afterAll(() => stack?.close());

  it('S2: 100 000 generated ids are unique 256-bit values', () => {
    const ids = new Set(Array.from({ length: 100_000 }, () => randomId(32)));
    expect(ids.size).toBe(100_000);
    for (const id of [...ids].slice(0, 10)) expect(Buffer.from(id, 'base64url')).toHaveLength(32);
  });

  it('S1: the session cookie is __Host-, HttpOnly, Secure, SameSite=Strict, Path=/, no Domain', async () => {
    const { result } = await signIn(stack);
    const set = result.hops.flatMap((h) => h.setCookie).find((c) => c.startsWith('__Host-bff='))!;
    const attrs = set.split(';').map((a) => a.trim().toLowerCase());
    expect(attrs).toEqual(expect.arrayContaining(['path=/', 'httponly', 'secure', 'samesite=strict']));
    expect(attrs.some((a) => a.startsWith('domain'))).toBe(false);
  });

  it('S3: the store never holds a token in plaintext; diagnostics show no token', async () => {
    const { browser } = await signIn(stack);
    const diag = await browser.fetch(`${stack.bff.url}/bff/diagnostics`, { initiator: `${stack.bff.url}/` });
    expect(diag.status).toBe(200);
    const text = await diag.text();
    expect(JSON.parse(text).tokens.hasRefreshToken).toBe(true);
    assertNoSecrets([...recorder.written, text, ...stack.logger.lines].join('\n'), [
      ...stack.tap.tokens,
      SESSION_SECRET,
    ]);
    expect(stack.tap.tokens.size).toBeGreaterThan(0);
  });

  it('S4: past the idle timeout → 401 and the store entry is deleted', async () => {
    const { browser } = await signIn(stack, 'bob');
    expect(await stack.bff.app.bff.sessions.list({ iss: stack.idp.issuer, sub: 'bob' })).toHaveLength(1);
    stack.clock.advance(601);
    expect((await getUser(browser, stack)).status).toBe(401);
    expect(await stack.bff.app.bff.sessions.list({ iss: stack.idp.issuer, sub: 'bob' })).toHaveLength(0);
  });

  it('S4: past the absolute timeout → 401 despite activity', async () => {
    const { browser } = await signIn(stack);
    for (let t = 0; t < 1400; t += 500) {
      expect((await getUser(browser, stack)).status).toBe(200);
      stack.clock.advance(500);
    }
    expect((await getUser(browser, stack)).status).toBe(401);
  });

  it('/bff/user?slide=false does not extend the session; /bff/user does', async () => {
    const sliding = await signIn(stack);
    const fixed = await signIn(stack);
    stack.clock.advance(400);
    expect((await getUser(sliding.browser, stack)).status).toBe(200);
    expect((await getUser(fixed.browser, stack, '?slide=false')).status).toBe(200);
    stack.clock.advance(300); // 700 s after login, 300 s after the sliding call
    expect((await getUser(sliding.browser, stack)).status).toBe(200);
    expect((await getUser(fixed.browser, stack)).status).toBe(401);
  });

  it('S4: remote-API reads (no express-session) see the same session and slide the idle timer too', async () => {
    const { browser } = await signIn(stack);
    const cookie = (await sessionCookie(browser, stack))!;
    const raw = () => ({ headers: { cookie: `__Host-bff=${cookie}` } }) as never;
    const bff = stack.bff.app.bff;
    stack.clock.advance(400);
    expect((await bff.getUser(raw()))?.sub).toBe('alice');
    await new Promise((resolve) => setTimeout(resolve, 20)); // the touch is written in the background
    stack.clock.advance(300); // 700 s after login, 300 s after the API call
    expect((await bff.getUser(raw()))?.sub).toBe('alice');
    expect((await getUser(browser, stack)).status).toBe(200);
    stack.clock.advance(601);
    expect(await bff.getUser(raw())).toBeUndefined();
    expect(await bff.getUser({ headers: { cookie: '__Host-bff=s%3Aforged.sig' } } as never)).toBeUndefined();
  });

  it('S5: random, forged, SQL-ish and 10 KB cookies → 401 JSON, never a 500, no session created', async () => {
    const { browser } = await signIn(stack);
    const real = (await sessionCookie(browser, stack))!;
    const tampered = `${real.slice(0, 10)}${real[10] === 'A' ? 'B' : 'A'}${real.slice(11)}`;
    for (const value of [randomId(32), tampered, "s%3A' OR 1=1 --.x", 'x'.repeat(10_000), 's%3A%ZZ', '']) {
      const res = await fetch(`${stack.bff.url}/bff/user`, {
        headers: { 'x-csrf': '1', cookie: `__Host-bff=${value}` },
      });
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ error: 'ERR_BFF_NO_SESSION' });
      expect(res.headers.getSetCookie()).toEqual([]);
    }
  });

  it('X1: /bff/user and local API routes need X-CSRF: 1 (401 JSON, never a redirect)', async () => {
    const { browser } = await signIn(stack);
    for (const path of ['/bff/user', '/local/whoami']) {
      const res = await browser.fetch(`${stack.bff.url}${path}`, { initiator: `${stack.bff.url}/` });
      expect(res.status).toBe(401);
      expect(res.headers.get('location')).toBeNull();
      expect(await res.json()).toMatchObject({ error: 'ERR_BFF_CSRF' });
    }
    const anonymous = await fetch(`${stack.bff.url}/local/whoami`, {
      headers: { 'x-csrf': '1' },
      redirect: 'manual',
    });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('location')).toBeNull();
  });

  it('X3: unsafe cross-site or same-site requests and foreign Origins → 403, session intact', async () => {
    const { browser } = await signIn(stack);
    const cookie = (await sessionCookie(browser, stack))!;
    const attempts: Record<string, string>[] = [
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
      { origin: 'https://other.example.com' },
      { origin: 'null' },
    ];
    for (const headers of attempts) {
      const res = await fetch(`${stack.bff.url}/bff/logout`, {
        method: 'POST',
        headers: { ...headers, 'x-csrf': '1', cookie: `__Host-bff=${cookie}` },
        redirect: 'manual',
      });
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ error: 'ERR_BFF_CROSS_SITE' });
    }
    expect((await getUser(browser, stack)).status).toBe(200);
  });

  it('X2 X3: a preflight from a foreign origin to the BFF endpoints and remote APIs is refused (403)', async () => {
    for (const path of ['/bff/user', '/api/todos']) {
      const res = await fetch(`${stack.bff.url}${path}`, {
        method: 'OPTIONS',
        headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' },
      });
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ error: 'ERR_BFF_CROSS_SITE' });
    }
  });

  it('X2: no CORS: a preflight from a foreign origin gets no Access-Control-Allow-* headers', async () => {
    for (const path of ['/bff/user', '/api/todos', '/local/whoami']) {
      const res = await fetch(`${stack.bff.url}${path}`, {
        method: 'OPTIONS',
        headers: {
          origin: 'https://evil.example',
          'access-control-request-method': 'GET',
          'access-control-request-headers': 'x-csrf',
        },
      });
      for (const [name] of res.headers) expect(name).not.toMatch(/^access-control-allow/);
    }
  });
});

describe('secrets and diagnostics defaults', () => {
  it('rotation: a new secret list (new first, old kept) still opens existing sessions and their tokens', async () => {
    const store = createMemoryStore();
    const OLD = SESSION_SECRET;
    const NEW = 'a-brand-new-session-secret-that-is-long-enough-0987';
    const first = await startStack({ bffOptions: { store } });
    try {
      const { browser } = await signIn(first);
      const cookie = (await sessionCookie(browser, first))!;
      const { startBff } = await import('@gatehouse/testing');
      const rotated = await startBff({ issuer: first.idp.issuer, sessionSecret: [NEW, OLD], bff: { store } });
      const dropped = await startBff({ issuer: first.idp.issuer, sessionSecret: [NEW], bff: { store } });
      try {
        const call = (url: string) =>
          fetch(`${url}/local/whoami`, { headers: { 'x-csrf': '1', cookie: `__Host-bff=${cookie}` } });
        const ok = await call(rotated.url);
        expect(ok.status).toBe(200);
        expect(((await ok.json()) as { hasAccessToken: boolean }).hasAccessToken).toBe(true);
        expect((await call(dropped.url)).status).toBe(401);
      } finally {
        await rotated.close();
        await dropped.close();
      }
    } finally {
      await first.close();
    }
  });

  it('diagnostics are 404 unless enabled', async () => {
    const stack = await startStack({ bffOptions: { diagnostics: false } });
    try {
      const browser = new TestBrowser();
      const res = await browser.fetch(`${stack.bff.url}/bff/diagnostics`);
      expect(res.status).toBe(404);
    } finally {
      await stack.close();
    }
  });
});
