// SECURITY D1: server nonces both ways and the token_type check. Resource-server nonces come from the
// real sample API (`dpopNonce`), authorization-server nonces from the real sample IdP
// (`requireDpopNonce`). Scripted only: an upstream that asks for a nonce again and again, and an OP
// answering `token_type: Bearer` to a proof (the fetch tap rewrites the real answer).
import { createMemoryStore } from '@gatehouse/bff';
import type { RunningApi } from '@gatehouse/testing';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  getUser,
  jsonResponse,
  type Stack,
  sessionCookie,
  signIn,
  startLoginUntilCallback,
  startStack,
} from './support-core/stack.js';
import { dpopRoutes, type Front, startApiBehind, startFront } from './support-dpop/front.js';
import { spaFetch } from './support-proxy/bff-host.js';

const payloadOf = (proof: string | null | undefined) => decodeJwt(String(proof));

describe('D1: resource-server nonces (the real sample API with dpopNonce) and the one retry', () => {
  let stack: Stack;
  const fronts: Front[] = [];
  const apis: RunningApi[] = [];
  const prefixes = ['/n1', '/n2', '/n3', '/n4'];

  beforeAll(async () => {
    for (const _ of prefixes) fronts.push(await startFront());
    stack = await startStack({
      bffOptions: { remoteApis: prefixes.flatMap((prefix, i) => dpopRoutes(fronts[i] as Front, prefix)) },
    });
    for (const front of fronts) {
      apis.push(
        await startApiBehind(front, { issuer: stack.idp.issuer, todosDPoP: 'required', dpopNonce: true }),
      );
    }
  });
  afterAll(async () => {
    for (const front of fronts) await front.close();
    for (const api of apis) await api.close();
    await stack?.close();
  });

  it('D1: the API asks for a nonce → one retry with it → 200; the next call carries it at once', async () => {
    const front = fronts[0] as Front;
    const { browser } = await signIn(stack);
    const first = await spaFetch(browser, stack.bff.url, '/n1/todos');
    expect(first.status).toBe(200);
    expect(front.seen.map((c) => c.status)).toEqual([401, 200]);
    const [asked, answered] = front.seen.map((c) => payloadOf(c.proof));
    expect(asked?.nonce).toBeUndefined();
    expect(typeof answered?.nonce).toBe('string');
    expect(answered?.jti).not.toBe(asked?.jti);

    const second = await spaFetch(browser, stack.bff.url, '/n1/whoami');
    expect(second.status).toBe(200);
    expect(front.seen.map((c) => c.status)).toEqual([401, 200, 200]);
    expect(payloadOf(front.seen[2]?.proof).nonce).toBeTruthy();
  });

  it('D1: a small JSON body is read first, so a POST is sent again with the nonce (same body) → 201', async () => {
    const front = fronts[1] as Front;
    const { browser } = await signIn(stack);
    const body = JSON.stringify({ title: 'sent twice, stored once' });
    const created = await spaFetch(browser, stack.bff.url, '/n2/todos', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(created.status).toBe(201);
    expect(front.seen.map((c) => [c.method, c.status, c.body])).toEqual([
      ['POST', 401, body],
      ['POST', 201, body],
    ]);
    const list = await spaFetch(browser, stack.bff.url, '/n2/todos');
    expect(((await list.json()) as unknown[]).length).toBe(1);
  });

  it('D1: a streamed (chunked) body is not held back: use_dpop_nonce → 503 ERR_BFF_UPSTREAM_DPOP_NONCE with Retry-After; sent again → 201', async () => {
    const front = fronts[2] as Front;
    const { browser } = await signIn(stack);
    const cookie = await browser.jar.getCookieString(`${stack.bff.url}/`);
    const post = () =>
      fetch(`${stack.bff.url}/n3/todos`, {
        method: 'POST',
        headers: {
          cookie,
          'x-csrf': '1',
          'content-type': 'application/json',
          'sec-fetch-site': 'same-origin',
        },
        body: new Blob([JSON.stringify({ title: 'streamed' })]).stream(),
        duplex: 'half',
      } as RequestInit);
    const refused = await post();
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await refused.json()).toMatchObject({ code: 'ERR_BFF_UPSTREAM_DPOP_NONCE' });
    expect(front.seen.map((c) => c.status)).toEqual([401]);
    const again = await post();
    expect(again.status).toBe(201);
    expect(front.seen.map((c) => c.status)).toEqual([401, 201]);
  });

  it('D1: an upstream asking for a nonce again after the retry gets no third request (no loop): its 401 is relayed', async () => {
    const front = fronts[3] as Front;
    let n = 0;
    front.script = (_req, res) => {
      res.writeHead(401, {
        'www-authenticate': 'DPoP error="use_dpop_nonce", algs="ES256"',
        'dpop-nonce': `nonce-${++n}`,
      });
      res.end();
      return true;
    };
    const { browser } = await signIn(stack);
    const res = await spaFetch(browser, stack.bff.url, '/n4/todos');
    expect(res.status).toBe(401);
    expect(front.seen).toHaveLength(2);
    expect(payloadOf(front.seen[1]?.proof).nonce).toBe('nonce-1');
    // The latest nonce is kept for the next call.
    await spaFetch(browser, stack.bff.url, '/n4/whoami');
    expect(payloadOf(front.seen[2]?.proof).nonce).toBe('nonce-2');
  });
});

describe('D1: authorization-server nonces (the real sample IdP with requireDpopNonce)', () => {
  let stack: Stack;
  let front: Front;
  let api: RunningApi;
  const toIdp: Array<{
    path: string;
    grant: string | null;
    proof: string | null;
    status: number;
    challenge: string | null;
  }> = [];

  beforeAll(async () => {
    front = await startFront();
    stack = await startStack({
      idp: { requireDpopNonce: true },
      bffOptions: { remoteApis: dpopRoutes(front) },
    });
    api = await startApiBehind(front, { issuer: stack.idp.issuer, todosDPoP: 'required' });
    stack.tap.intercept = async (url, init) => {
      const response = await fetch(url, init);
      const body = init?.body instanceof URLSearchParams ? init.body : undefined;
      toIdp.push({
        path: url.pathname,
        grant: body?.get('grant_type') ?? null,
        proof: new Headers(init?.headers).get('dpop'),
        status: response.status,
        challenge: response.headers.get('www-authenticate'),
      });
      return response;
    };
  });
  afterAll(async () => {
    await front?.close();
    await api?.close();
    await stack?.close();
  });

  it('D1: code redemption: use_dpop_nonce → one retry with the nonce → signed in; UserInfo and the refresh reuse the nonce', async () => {
    const { browser } = await signIn(stack);
    expect(await sessionCookie(browser, stack)).toBeTruthy();
    const redemption = toIdp.filter((r) => r.grant === 'authorization_code');
    expect(redemption.map((r) => r.status)).toEqual([400, 200]);
    expect(payloadOf(redemption[0]?.proof).nonce).toBeUndefined();
    expect(payloadOf(redemption[1]?.proof).nonce).toBeTruthy();
    // The nonce the token endpoint gave is shared: UserInfo's proof has it the first time. (UserInfo
    // itself refuses this access token, which is audience-restricted to the API: only the ID token's
    // claims are used, as without DPoP.)
    const userinfo = toIdp.filter((r) => r.path === '/me');
    expect(userinfo).toHaveLength(1);
    expect(payloadOf(userinfo[0]?.proof).nonce).toBeTruthy();
    expect(userinfo[0]?.challenge).not.toContain('use_dpop_nonce');

    stack.clock.advance(400);
    try {
      expect((await spaFetch(browser, stack.bff.url, '/api/todos')).status).toBe(200);
    } finally {
      stack.clock.advance(-400);
    }
    const refresh = toIdp.filter((r) => r.grant === 'refresh_token');
    expect(refresh.at(-1)?.status).toBe(200);
    expect(payloadOf(refresh[0]?.proof).nonce).toBeTruthy();
    expect(refresh.length).toBeLessThanOrEqual(2);
  });
});

describe('D1: token_type must be DPoP when the session is DPoP-bound', () => {
  let stack: Stack;
  const store = createMemoryStore();

  beforeAll(async () => {
    stack = await startStack({ bffOptions: { store } });
  });
  afterAll(async () => {
    await stack?.close();
  });

  /** Makes the OP's real token answers say Bearer (for `grant` only). */
  const downgrade = (grant: string) => {
    stack.tap.intercept = async (url, init) => {
      const body = init?.body instanceof URLSearchParams ? init.body : undefined;
      if (url.pathname !== '/token' || body?.get('grant_type') !== grant) return undefined;
      const real = (await (await fetch(url, init)).json()) as Record<string, unknown>;
      return jsonResponse({ ...real, token_type: 'Bearer' });
    };
  };

  it('D1 L8: the OP answers token_type Bearer at sign-in → 502 "dpop_not_bound", no session, a coded log line', async () => {
    const { browser, callbackUrl } = await startLoginUntilCallback(stack);
    downgrade('authorization_code');
    try {
      const res = await browser.fetch(callbackUrl, { navigation: true, initiator: stack.idp.issuer });
      expect(res.status).toBe(502);
      expect(await res.text()).toContain('dpop_not_bound');
      expect(res.headers.getSetCookie().some((c) => /^__Host-bff=[^;]/.test(c))).toBe(false);
    } finally {
      stack.tap.intercept = undefined;
    }
    expect(await store.find({ iss: stack.idp.issuer, sub: 'alice' })).toEqual([]);
    expect(stack.logger.lines.some((line) => line.includes('ERR_BFF_DPOP_NOT_BOUND'))).toBe(true);
  });

  it('D1: the OP answers token_type Bearer to a refresh → the session ends (401), never downgraded to Bearer', async () => {
    const { browser } = await signIn(stack, 'bob');
    expect((await getUser(browser, stack)).status).toBe(200);
    downgrade('refresh_token');
    stack.clock.advance(400);
    try {
      const res = await spaFetch(browser, stack.bff.url, '/bff/user');
      expect(res.status).toBe(200); // /bff/user needs no token
      // The token step: bff.getAccessToken is what a local API and the proxy use.
      const viaLocal = await spaFetch(browser, stack.bff.url, '/local/whoami');
      expect(viaLocal.status).toBe(401);
      expect(await viaLocal.json()).toMatchObject({ code: 'ERR_BFF_SESSION_ENDED' });
    } finally {
      stack.tap.intercept = undefined;
      stack.clock.advance(-400);
    }
    expect((await getUser(browser, stack)).status).toBe(401);
    expect(stack.logger.lines.some((line) => line.includes('dpop_not_bound'))).toBe(true);
  });
});
