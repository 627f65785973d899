// X5 and O6: the entry checks and the routers agree on what is a BFF endpoint or a remote-API call (letter
// case, percent-encoded letters, repeated and trailing slashes, `;`, `\`, dot segments → 404), and a logout
// that clears the session cookie always ended the server-side session first (else 503, nothing cleared).
// Through the sample host (apps/bff: /bff/*, the /api/todos proxy, the /local/whoami guard) with the real
// sample IdP and real HTTP on loopback.
import { createMemoryStore, type SessionStore } from '@gatehouse/bff';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveRemoteApis } from '../src/lib/proxy/options.js';
import { BFF_ENDPOINTS, createEntryMatcher } from '../src/lib/routing.js';
import { getUser, type Stack, sessionCookie, signIn, startStack } from './support-core/stack.js';
import { rawRequest } from './support-proxy/upstream.js';

/** A memory store whose `destroy` fails while `failDestroy` is set (a store outage at logout). */
function storeFailingDestroy(): SessionStore & { failDestroy: boolean } {
  const inner = createMemoryStore();
  const store = Object.create(null) as SessionStore & { failDestroy: boolean };
  for (const key of Object.keys(inner) as Array<keyof SessionStore>) {
    const member = inner[key];
    if (typeof member === 'function') Object.assign(store, { [key]: member.bind(inner) });
  }
  return Object.assign(store, {
    kind: inner.kind,
    failDestroy: false,
    destroy: (id: string) =>
      store.failDestroy ? Promise.reject(new Error('store: connection refused')) : inner.destroy(id),
  });
}

/** Rewrites of a canonical path that Express, a decoder or a normaliser might still map onto it. */
const TRANSFORMS: Array<(path: string, at: number) => string> = [
  // one letter upper-cased
  (p, at) => {
    const letters = [...p.matchAll(/[a-z]/g)].map((m) => m.index);
    const i = letters[at % letters.length]!;
    return p.slice(0, i) + p[i]!.toUpperCase() + p.slice(i + 1);
  },
  // one letter percent-encoded (either hex case)
  (p, at) => {
    const letters = [...p.matchAll(/[a-z]/g)].map((m) => m.index);
    const i = letters[at % letters.length]!;
    const hex = p.charCodeAt(i).toString(16);
    return `${p.slice(0, i)}%${at % 2 ? hex.toUpperCase() : hex}${p.slice(i + 1)}`;
  },
  // a slash doubled
  (p, at) => {
    const slashes = [...p.matchAll(/\//g)].map((m) => m.index);
    const i = slashes[at % slashes.length]!;
    return `${p.slice(0, i)}/${p.slice(i)}`;
  },
  (p) => `${p}/`,
  (p) => `${p};x`,
  (p) => p.replace('/bff/', '/bff;jsessionid=1/'),
  (p) => p.replace('/bff/', '/bff/./'),
  (p) => p.replace('/bff/', '/x/../bff/'),
  (p) => p.replace('/bff/', '/bff%2F'),
  (p) => p.replace('/bff/', '/bff\\'),
  (p) => p.replace('/bff/', '/%2562ff/'),
];
const variantArb = (paths: readonly string[]) =>
  fc
    .tuple(
      fc.constantFrom(...paths),
      fc.array(fc.tuple(fc.integer({ min: 0, max: TRANSFORMS.length - 1 }), fc.nat(20)), {
        minLength: 1,
        maxLength: 3,
      }),
    )
    .map(([path, steps]) => ({
      canonical: path,
      variant: steps.reduce((p, [t, at]) => TRANSFORMS[t]!(p, at), path),
    }))
    .filter(({ canonical, variant }) => canonical !== variant);

describe('X5 entry matcher', () => {
  const entry = createEntryMatcher(
    resolveRemoteApis([{ prefix: '/api/todos', upstream: 'http://127.0.0.1:1/api/todos' }]),
  );

  it('X5: endpoints and prefixes match exactly; the rest of /bff and every look-alike is not-found', () => {
    expect(entry('/bff/logout')).toBe('endpoint');
    expect(entry('/bff/backchannel')).toBe('backchannel');
    expect(entry('/api/todos')).toBe('api');
    expect(entry('/api/todos/1')).toBe('api');
    expect(entry('/')).toBe('other');
    expect(entry('/assets/App.JS')).toBe('other');
    expect(entry('/api/todosX')).toBe('other');
    expect(entry('/bffx/user')).toBe('other');
    for (const path of [
      '/bff',
      '/bff/',
      '/bff/nope',
      '/BFF/logout',
      '/bff//user',
      '/%62ff/user',
      '/bff/user/',
      '/bff/%75ser',
      '/Bff/backchannel',
      '/Api/todos',
      '/api//todos',
      '/api/todo%73/1',
      '/api/todos;x/1',
      '/API/TODOS/',
      '/x/../api/todos',
    ]) {
      expect(entry(path), path).toBe('not-found');
    }
  });

  it('X5 property: only the exact endpoint paths are endpoints; every rewrite of one is not-found', () => {
    fc.assert(
      fc.property(variantArb([...BFF_ENDPOINTS, '/api/todos']), ({ variant }) => {
        // A rewrite of a prefix that still starts with it (`/api/todos/`, `/api/todos;x`) is the proxy's
        // to judge; it checks the rest of the path itself (path.ts).
        const kind = entry(variant);
        if (kind === 'api') expect(variant.startsWith('/api/todos')).toBe(true);
        else expect(kind).toBe('not-found');
      }),
      { numRuns: 5_000 },
    );
  });
});

describe('X5 O6 through the sample host', () => {
  let stack: Stack;
  const store = storeFailingDestroy();
  beforeAll(async () => {
    stack = await startStack({ bffOptions: { store, diagnostics: true } });
  });
  afterAll(async () => {
    store.failDestroy = false;
    await stack?.close();
  });

  const spaHeaders = (cookie: string) => ({
    cookie: `__Host-bff=${cookie}`,
    'x-csrf': '1',
    'sec-fetch-site': 'same-origin',
    'sec-fetch-mode': 'cors',
  });
  const navHeaders = (cookie: string) => ({
    cookie: `__Host-bff=${cookie}`,
    'sec-fetch-site': 'same-origin',
    'sec-fetch-mode': 'navigate',
    accept: 'text/html',
  });
  /** A signed-in browser: its cookie value and the sid of its bff:logout_url. */
  const session = async () => {
    const { browser } = await signIn(stack);
    const claims = (await (await getUser(browser, stack)).json()) as { type: string; value: string }[];
    const logoutUrl = claims.find((c) => c.type === 'bff:logout_url')!.value;
    return { cookie: (await sessionCookie(browser, stack))!, sid: new URL(logoutUrl, stack.bff.url).search };
  };
  const clearsCookie = (res: { headers: Record<string, unknown> }) =>
    ([res.headers['set-cookie'] ?? []].flat() as string[]).some((c) => /^__Host-bff=;.*Max-Age=0/.test(c));
  /** O6: the old cookie value gets 401 on the session endpoint, the diagnostics, the local API and the proxy. */
  const expect401Everywhere = async (cookie: string) => {
    for (const path of ['/bff/user', '/bff/diagnostics', '/local/whoami', '/api/todos']) {
      const res = await rawRequest(stack.bff.port, { path, headers: spaHeaders(cookie) });
      expect(res.status, path).toBe(401);
    }
  };
  const userStatus = async (cookie: string) =>
    (await rawRequest(stack.bff.port, { path: '/bff/user', headers: spaHeaders(cookie) })).status;

  it('X5 O6: GET /BFF/logout?sid=… → 404; nothing cleared, the session lives on (was: cookie cleared, session kept)', async () => {
    const { cookie, sid } = await session();
    const res = await rawRequest(stack.bff.port, { path: `/BFF/logout${sid}`, headers: navHeaders(cookie) });
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body)).toEqual({ error: 'ERR_BFF_NOT_FOUND' });
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(await userStatus(cookie)).toBe(200);
  });

  it('X5: /bff//user, /%62ff/user, /bff/user/ and /Api/todos → 404 with a live session, never the endpoint', async () => {
    const { cookie } = await session();
    for (const path of [
      '/bff//user',
      '/%62ff/user',
      '/bff/user/',
      '/BFF/user',
      '/Api/todos',
      '/api//todos',
    ]) {
      const res = await rawRequest(stack.bff.port, { path, headers: spaHeaders(cookie) });
      expect(res.status, path).toBe(404);
      expect(JSON.parse(res.body), path).toEqual({ error: 'ERR_BFF_NOT_FOUND' });
    }
    expect(await userStatus(cookie)).toBe(200);
  });

  it('X5 property: every rewrite of every endpoint (GET and POST, with a live session) → 404, no Set-Cookie; the session lives on', async () => {
    const { cookie, sid } = await session();
    await fc.assert(
      fc.asyncProperty(variantArb(BFF_ENDPOINTS), fc.boolean(), async ({ variant }, post) => {
        const res = await rawRequest(stack.bff.port, {
          method: post ? 'POST' : 'GET',
          path: `${variant}${sid}`,
          headers: post ? spaHeaders(cookie) : navHeaders(cookie),
        });
        expect(res.status, variant).toBe(404);
        expect(res.headers['set-cookie'], variant).toBeUndefined();
      }),
      { numRuns: 300 },
    );
    expect(await userStatus(cookie)).toBe(200);
  });

  it('O6: after a GET or POST logout that clears the cookie, the old cookie gets 401 everywhere', async () => {
    const get = await session();
    const byGet = await rawRequest(stack.bff.port, {
      path: `/bff/logout${get.sid}`,
      headers: navHeaders(get.cookie),
    });
    expect(byGet.status).toBe(302);
    expect(clearsCookie(byGet)).toBe(true);
    await expect401Everywhere(get.cookie);

    const post = await session();
    const byPost = await rawRequest(stack.bff.port, {
      method: 'POST',
      path: '/bff/logout',
      headers: spaHeaders(post.cookie),
    });
    expect(byPost.status).toBe(302);
    expect(clearsCookie(byPost)).toBe(true);
    await expect401Everywhere(post.cookie);
  });

  it('O6: the store cannot delete the session at logout → 503, no Set-Cookie; the session still works afterwards', async () => {
    const { cookie, sid } = await session();
    store.failDestroy = true;
    let res: Awaited<ReturnType<typeof rawRequest>>;
    try {
      res = await rawRequest(stack.bff.port, { path: `/bff/logout${sid}`, headers: navHeaders(cookie) });
    } finally {
      store.failDestroy = false;
    }
    expect(res.status).toBe(503);
    expect(JSON.parse(res.body)).toMatchObject({ error: 'ERR_BFF_STORE_UNAVAILABLE' });
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(res.headers.location).toBeUndefined();
    expect(await userStatus(cookie)).toBe(200);
    // And once the store is back, the same logout works and ends it.
    const again = await rawRequest(stack.bff.port, {
      path: `/bff/logout${sid}`,
      headers: navHeaders(cookie),
    });
    expect(clearsCookie(again)).toBe(true);
    await expect401Everywhere(cookie);
  });
});
