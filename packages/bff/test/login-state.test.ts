// Bounded login state (SECURITY S6, L3, L4): a sign-in transaction lives only in its sealed, state-bound
// `__Host-` cookie, so anonymous /bff/login starts write nothing server-side; the callback clears the
// cookie and claims the state once; one user's sessions are capped without touching anyone else's.
// Real sample IdP, real memory and Redis stores, real HTTP.
import { Agent, request } from 'node:http';
import { createMemoryStore, createRedisStore, type SessionStore } from '@gatehouse/bff';
import {
  connectTestRedis,
  deleteRedisPrefix,
  requireRedis,
  TestBrowser,
  uniqueRedisPrefix,
} from '@gatehouse/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_PENDING_TRANSACTIONS } from '../src/lib/routes/login.js';
import {
  authorizationParams,
  getUser,
  type Stack,
  sessionCookie,
  signIn,
  startStack,
} from './support-core/stack.js';

const redisReady = await requireRedis('bff login state on Redis');

/** Wraps a store and records every method call on it. */
function recording(inner: SessionStore): { store: SessionStore; calls: string[] } {
  const calls: string[] = [];
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.push(String(prop));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store, calls };
}

/** A browser that stops at the BFF callback (recording its URL) while `hold` is true. */
function holdingBrowser(stack: Pick<Stack, 'bff'>) {
  const callbacks: URL[] = [];
  const state = { hold: true };
  const browser = new TestBrowser({
    fetch: async (input, init) => {
      const url = String(input instanceof Request ? input.url : input);
      if (state.hold && url.startsWith(`${stack.bff.url}/bff/callback`)) {
        callbacks.push(new URL(url));
        return new Response('held', { status: 200, headers: { 'content-type': 'text/plain' } });
      }
      return fetch(input, init);
    },
  });
  /** Starts one sign-in and returns its callback URL (not visited). */
  const start = async (user = 'alice', query = '') => {
    const before = callbacks.length;
    await browser.login(`${stack.bff.url}/bff/login${query}`, { username: user, password: user });
    if (callbacks.length !== before + 1) throw new Error('the sign-in never reached /bff/callback');
    return callbacks[callbacks.length - 1]!;
  };
  const complete = async (callbackUrl: URL, issuer: string) => {
    state.hold = false;
    try {
      return await browser.fetch(callbackUrl, { navigation: true, initiator: issuer });
    } finally {
      state.hold = true;
    }
  };
  return { browser, start, complete };
}

const txCookies = async (browser: TestBrowser, stack: Pick<Stack, 'bff'>) =>
  (await browser.cookies(`${stack.bff.url}/`)).filter((c) => c.key.startsWith('__Host-bff-tx-'));

/**
 * `count` anonymous GET /bff/login (no cookies kept), `concurrency` at a time over keep-alive
 * connections (node:http: a fraction of fetch's client cost); returns how many answered 302.
 */
async function anonymousLoginStarts(url: string, count: number, concurrency = 16) {
  const target = new URL(`${url}/bff/login`);
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const one = () =>
    new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: target.port,
          path: target.pathname,
          agent,
          headers: { host: target.host },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end();
    });
  let next = 0;
  let redirects = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      if ((await one()) === 302) redirects++;
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    agent.destroy();
  }
  return redirects;
}

/** The S6 checks every store must pass. */
function boundedStateSuite(
  name: string,
  makeStore: () => Promise<{ store: SessionStore; keys: () => Promise<number> }>,
) {
  describe(`S6 bounded login state (${name} store)`, () => {
    let stack: Stack;
    let recorder: ReturnType<typeof recording>;
    let keys: () => Promise<number>;
    beforeAll(async () => {
      const made = await makeStore();
      recorder = recording(made.store);
      keys = made.keys;
      // These checks are about the BFF's own state. With PAR (the default against the sample IdP) every
      // login start also pushes its request to the OP, one back-channel request each: the 20 000-start
      // flood below would then measure the IdP's PAR endpoint (minutes on a small machine), not the BFF.
      // par.test.ts covers the pushed flow, including its transaction cookie.
      stack = await startStack({
        bffOptions: { store: recorder.store, pushedAuthorizationRequests: 'never' },
      });
    });
    afterAll(async () => {
      await stack?.close();
    });

    it('S6: a sign-in started before 20 000 anonymous login starts completes after them; the starts touched no store', async () => {
      // The user is on the IdP's login page (transaction started at the BFF) while the flood runs;
      // the IdP's authorization code lives 60 s only, so the user signs in at the IdP afterwards.
      const early = new TestBrowser();
      const loginPage = await early.follow(`${stack.bff.url}/bff/login?returnUrl=%2Fearly`);
      expect(loginPage.hops[0]?.status).toBe(302);
      recorder.calls.length = 0;
      const keysBefore = await keys();

      expect(await anonymousLoginStarts(stack.bff.url, 20_000)).toBe(20_000);
      expect(recorder.calls).toEqual([]); // not a read, not a write
      expect(await keys()).toBe(keysBefore);

      const done = await early.submitLogin(loginPage, { username: 'alice', password: 'alice' });
      const callback = done.hops.find((h) => h.url.startsWith(`${stack.bff.url}/bff/callback`));
      expect(callback?.status).toBe(302);
      expect(callback?.location).toBe(`${stack.bff.url}/early`);
      expect((await getUser(early, stack)).status).toBe(200);
    }, 300_000);

    it('S6 L3: the store holds no transaction keys after login starts', async () => {
      const before = await keys();
      recorder.calls.length = 0;
      const tab = holdingBrowser(stack);
      await tab.start('bob');
      await tab.start('bob');
      expect(recorder.calls).toEqual([]);
      expect(await keys()).toBe(before);
    });

    it('L4: a replayed callback URL with a copied transaction cookie → 400, no second token request', async () => {
      const tab = holdingBrowser(stack);
      const callbackUrl = await tab.start('alice');
      const [copied] = await txCookies(tab.browser, stack);
      expect((await tab.complete(callbackUrl, stack.idp.issuer)).status).toBe(302);
      const before = stack.tap.count('/token', 'authorization_code');
      const thief = new TestBrowser();
      await thief.setCookie(
        `${copied!.key}=${copied!.value}; Path=/; Secure; HttpOnly; SameSite=Lax`,
        `${stack.bff.url}/`,
      );
      const replay = await thief.fetch(callbackUrl, { navigation: true, initiator: stack.idp.issuer });
      expect(replay.status).toBe(400);
      expect(stack.tap.count('/token', 'authorization_code')).toBe(before);
      expect(await sessionCookie(thief, stack)).toBeUndefined();
    });

    it('S6: one user signing in again and again never evicts another user’s session; that user keeps the newest 20', async () => {
      const alice = await signIn(stack, 'alice');
      const bob = new TestBrowser();
      const cookies: string[] = [];
      for (let i = 0; i < 26; i++) {
        const done = await bob.login(`${stack.bff.url}/bff/login`, { username: 'bob', password: 'bob' });
        expect(done.status).toBe(200);
        cookies.push((await sessionCookie(bob, stack))!);
      }
      expect(new Set(cookies).size).toBe(26);
      expect((await getUser(alice.browser, stack)).status).toBe(200);
      expect(await stack.bff.app.bff.sessions.list({ iss: stack.idp.issuer, sub: 'bob' })).toHaveLength(20);
      const status = async (cookie: string) =>
        (
          await fetch(`${stack.bff.url}/bff/user`, {
            headers: { 'x-csrf': '1', cookie: `__Host-bff=${cookie}` },
          })
        ).status;
      const statuses = await Promise.all(cookies.map(status));
      expect(statuses).toEqual([...Array(6).fill(401), ...Array(20).fill(200)]);
    }, 120_000);
  });
}

boundedStateSuite('memory', async () => {
  const store = createMemoryStore();
  return { store, keys: async () => 0 };
});

describe.skipIf(!redisReady)('Redis', () => {
  const prefix = uniqueRedisPrefix('bff-login-state');
  let client: Awaited<ReturnType<typeof connectTestRedis>>;
  afterAll(async () => {
    if (!client) return;
    await deleteRedisPrefix(client, prefix);
    await client.close();
  });
  boundedStateSuite('redis', async () => {
    client = await connectTestRedis();
    const keys = async () => {
      let n = 0;
      for await (const batch of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) n += batch.length;
      return n;
    };
    return { store: createRedisStore({ client, prefix }), keys };
  });
});

describe('S6 L16 anonymous login starts with PAR on (the sample host’s default)', () => {
  let stack: Stack;
  let recorder: ReturnType<typeof recording>;
  let parPath: string;
  beforeAll(async () => {
    recorder = recording(createMemoryStore());
    stack = await startStack({ bffOptions: { store: recorder.store } });
    const metadata = (await (
      await fetch(`${stack.idp.issuer}/.well-known/openid-configuration`)
    ).json()) as Record<string, unknown>;
    parPath = new URL(String(metadata.pushed_authorization_request_endpoint)).pathname;
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('S6 L16: a sign-in started before 500 anonymous pushed login starts completes after them; the starts touched no store and cost the IdP one push each', async () => {
    const early = new TestBrowser();
    const loginPage = await early.follow(`${stack.bff.url}/bff/login?returnUrl=%2Fearly`);
    expect(loginPage.hops[0]?.status).toBe(302);
    expect(new URL(loginPage.hops[0]!.location!).searchParams.has('request_uri')).toBe(true);
    recorder.calls.length = 0;
    const pushesBefore = stack.tap.count(parPath);

    expect(await anonymousLoginStarts(stack.bff.url, 500)).toBe(500);
    expect(recorder.calls).toEqual([]); // not a read, not a write
    // The amplification the README's login section describes: one back-channel push to the IdP per
    // anonymous start, which only a rate limit in front of /bff/login bounds.
    expect(stack.tap.count(parPath) - pushesBefore).toBe(500);

    const done = await early.submitLogin(loginPage, { username: 'alice', password: 'alice' });
    const callback = done.hops.find((h) => h.url.startsWith(`${stack.bff.url}/bff/callback`));
    expect(callback?.status).toBe(302);
    expect(callback?.location).toBe(`${stack.bff.url}/early`);
    expect((await getUser(early, stack)).status).toBe(200);
  }, 120_000);
});

describe('S6 a small global bound cannot be filled by one user', () => {
  it('S6: memory store of 25 sessions, cap 20: one user signing in 40 times leaves another user’s session alone', async () => {
    const stack = await startStack({ bffOptions: { store: createMemoryStore({ maxSessions: 25 }) } });
    try {
      const alice = await signIn(stack, 'alice');
      const bob = new TestBrowser();
      for (let i = 0; i < 40; i++) {
        await bob.login(`${stack.bff.url}/bff/login`, { username: 'bob', password: 'bob' });
      }
      expect((await getUser(bob, stack)).status).toBe(200);
      expect((await getUser(alice.browser, stack)).status).toBe(200);
      expect(await stack.bff.app.bff.sessions.list({ iss: stack.idp.issuer, sub: 'bob' })).toHaveLength(20);
    } finally {
      await stack.close();
    }
  }, 120_000);

  it('S6: maxSessionsPerUser is validated and applied (cap 2: the third sign-in ends the first session only)', async () => {
    const { createBff } = await import('@gatehouse/bff');
    const base = {
      issuer: 'http://127.0.0.1:1',
      clientId: 'bff',
      clientSecret: 'x',
      baseUrl: 'http://localhost:3000',
      sessionSecret: 'a-session-secret-of-at-least-32-characters',
    };
    for (const bad of [0, -1, 1.5, '20', 10_001]) {
      expect(() => createBff({ ...base, maxSessionsPerUser: bad as number })).toThrow(
        /maxSessionsPerUser.*integer between 1 and 10000/,
      );
    }
    const stack = await startStack({ bffOptions: { maxSessionsPerUser: 2 } });
    try {
      const first = await signIn(stack, 'bob');
      const second = await signIn(stack, 'bob');
      const third = await signIn(stack, 'bob');
      expect((await getUser(first.browser, stack)).status).toBe(401);
      expect((await getUser(second.browser, stack)).status).toBe(200);
      expect((await getUser(third.browser, stack)).status).toBe(200);
    } finally {
      await stack.close();
    }
  });
});

describe('L3 L4 the transaction cookie', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.close();
  });
  const authorizationCalls = () => stack.tap.count('/token', 'authorization_code');

  it('L3: __Host-, Secure, HttpOnly, SameSite=Lax, Path=/, Max-Age ≤ 600; sealed: no state, nonce, verifier or returnUrl in it', async () => {
    const res = await fetch(`${stack.bff.url}/bff/login?returnUrl=%2Fmarker-path-4711`, {
      redirect: 'manual',
    });
    expect(res.status).toBe(302);
    const authz = authorizationParams(stack, res.headers.get('location')!);
    const [cookie, ...rest] = res.headers.getSetCookie();
    expect(rest).toEqual([]);
    expect(cookie).toMatch(
      /^__Host-bff-tx-[A-Za-z0-9_-]{16}=[^;]+; Max-Age=(\d+); Path=\/; HttpOnly; Secure; SameSite=Lax$/,
    );
    expect(Number(/Max-Age=(\d+)/.exec(cookie!)![1])).toBeLessThanOrEqual(600);
    expect(cookie).not.toMatch(/Domain/i);
    const value = cookie!.split(';')[0]!.split('=')[1]!;
    const decoded = value
      .split('.')
      .map((part) => Buffer.from(part, 'base64url').toString('latin1'))
      .join(' ');
    const state = authz.get('state');
    const nonce = authz.get('nonce');
    expect(state?.length).toBeGreaterThanOrEqual(43);
    expect(nonce?.length).toBeGreaterThanOrEqual(43);
    for (const secret of [state!, nonce!, 'marker-path-4711']) {
      expect(value).not.toContain(secret);
      expect(decoded).not.toContain(secret);
    }
  });

  it('L3: a tampered cookie, or a cookie moved under another state’s name → 400, no token request; the genuine one still completes', async () => {
    const tab = holdingBrowser(stack);
    const callbackUrl = await tab.start('alice');
    const [genuine] = await txCookies(tab.browser, stack);
    const before = authorizationCalls();

    const forger = new TestBrowser();
    const flipped = `${genuine!.value.slice(0, -2)}${genuine!.value.endsWith('AA') ? 'BB' : 'AA'}`;
    await forger.setCookie(
      `${genuine!.key}=${flipped}; Path=/; Secure; HttpOnly; SameSite=Lax`,
      `${stack.bff.url}/`,
    );
    expect((await forger.fetch(callbackUrl, { navigation: true, initiator: stack.idp.issuer })).status).toBe(
      400,
    );

    // Another transaction's genuine cookie, renamed to this state's cookie: sealed to its own state.
    const other = holdingBrowser(stack);
    await other.start('bob');
    const [theirs] = await txCookies(other.browser, stack);
    const mover = new TestBrowser();
    await mover.setCookie(
      `${genuine!.key}=${theirs!.value}; Path=/; Secure; HttpOnly; SameSite=Lax`,
      `${stack.bff.url}/`,
    );
    expect((await mover.fetch(callbackUrl, { navigation: true, initiator: stack.idp.issuer })).status).toBe(
      400,
    );
    expect(authorizationCalls()).toBe(before);

    expect((await tab.complete(callbackUrl, stack.idp.issuer)).status).toBe(302);
    expect(authorizationCalls()).toBe(before + 1);
  });

  it('L3: concurrent tabs are keyed by state: three sign-ins in one browser complete in any order', async () => {
    const tab = holdingBrowser(stack);
    const urls = [
      await tab.start('alice', '?returnUrl=%2Fone'),
      await tab.start('alice', '?returnUrl=%2Ftwo'),
    ];
    urls.push(await tab.start('alice', '?returnUrl=%2Fthree'));
    expect(await txCookies(tab.browser, stack)).toHaveLength(3);
    const locations: (string | null)[] = [];
    for (const url of [...urls].reverse()) {
      const res = await tab.complete(url, stack.idp.issuer);
      expect(res.status).toBe(302);
      locations.push(res.headers.get('location'));
    }
    expect(locations).toEqual(['/three', '/two', '/one']);
    expect(await txCookies(tab.browser, stack)).toHaveLength(0);
  });

  it(`S6 L3: one browser keeps at most ${MAX_PENDING_TRANSACTIONS} pending transactions; the oldest beyond that are expired`, async () => {
    const tab = holdingBrowser(stack);
    const urls: URL[] = [];
    for (let i = 0; i < MAX_PENDING_TRANSACTIONS + 4; i++) {
      urls.push(await tab.start('alice'));
      stack.clock.advance(1); // distinct expiry times
    }
    expect(await txCookies(tab.browser, stack)).toHaveLength(MAX_PENDING_TRANSACTIONS);
    const before = authorizationCalls();
    expect((await tab.complete(urls[0]!, stack.idp.issuer)).status).toBe(400);
    expect(authorizationCalls()).toBe(before);
    expect((await tab.complete(urls[urls.length - 1]!, stack.idp.issuer)).status).toBe(302);
  });

  it('L4: a transaction past its 600 s is refused server-side even when the browser still sends the cookie', async () => {
    const tab = holdingBrowser(stack);
    const callbackUrl = await tab.start('alice');
    stack.clock.advance(601);
    const before = authorizationCalls();
    expect((await tab.complete(callbackUrl, stack.idp.issuer)).status).toBe(400);
    expect(authorizationCalls()).toBe(before);
  });
});
