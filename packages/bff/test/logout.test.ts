// RP-initiated logout (O1–O5): local first, revocation never blocks, end-session parameters, and a
// post-logout landing page that is not an open redirect.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  getUser,
  jsonResponse,
  type Stack,
  sessionCookie,
  signIn,
  startStack,
} from './support-core/stack.js';

describe('logout', () => {
  let stack: Stack;
  let revocationPath: string;
  beforeAll(async () => {
    stack = await startStack();
    const meta = (await (
      await fetch(`${stack.idp.issuer}/.well-known/openid-configuration`)
    ).json()) as Record<string, string>;
    revocationPath = new URL(meta.revocation_endpoint!).pathname;
  });
  afterAll(() => stack?.close());

  const logoutUrl = async (browser: Awaited<ReturnType<typeof signIn>>['browser']) => {
    const claims = (await (await getUser(browser, stack)).json()) as { type: string; value: string }[];
    return claims.find((c) => c.type === 'bff:logout_url')!.value;
  };

  it('O1: GET without the sid, or with a wrong sid → 400, session intact', async () => {
    const { browser } = await signIn(stack);
    for (const query of ['', '?sid=wrong', '?sid=']) {
      const res = await browser.fetch(`${stack.bff.url}/bff/logout${query}`, {
        navigation: true,
        initiator: `${stack.bff.url}/`,
      });
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/problem\+json/);
      expect(res.headers.getSetCookie()).toEqual([]);
    }
    expect((await getUser(browser, stack)).status).toBe(200);
  });

  it('O1: a cross-site <img src=/bff/logout?sid=…> carries no Strict cookie and changes nothing', async () => {
    const { browser } = await signIn(stack);
    const url = await logoutUrl(browser);
    const res = await browser.fetch(`${stack.bff.url}${url}`, { site: 'cross-site', navigation: false });
    expect(res.headers.getSetCookie()).toEqual([]);
    expect((await getUser(browser, stack)).status).toBe(200);
  });

  it('O1 X1: POST without X-CSRF → 401, session intact; with it → logged out', async () => {
    const { browser } = await signIn(stack);
    const bare = await browser.fetch(`${stack.bff.url}/bff/logout`, {
      method: 'POST',
      initiator: `${stack.bff.url}/`,
    });
    expect(bare.status).toBe(401);
    expect((await getUser(browser, stack)).status).toBe(200);
    const ok = await browser.fetch(`${stack.bff.url}/bff/logout?returnUrl=%2Fbye`, {
      method: 'POST',
      headers: { 'x-csrf': '1' },
      initiator: `${stack.bff.url}/`,
    });
    expect(ok.status).toBe(302);
    expect((await getUser(browser, stack)).status).toBe(401);
  });

  it('O3 O2: revocation answering 500 never blocks the logout; the RT is revoked with token_type_hint', async () => {
    const { browser } = await signIn(stack);
    const cookie = (await sessionCookie(browser, stack))!;
    const url = await logoutUrl(browser);
    const hints: (string | null)[] = [];
    stack.tap.intercept = (u, init) => {
      if (u.pathname !== revocationPath) return undefined;
      hints.push(init?.body instanceof URLSearchParams ? init.body.get('token_type_hint') : null);
      return jsonResponse({ error: 'server_error' }, 500);
    };
    try {
      const res = await browser.fetch(`${stack.bff.url}${url}`, {
        navigation: true,
        initiator: `${stack.bff.url}/`,
      });
      expect(res.status).toBe(302);
      expect(new URL(res.headers.get('location')!).origin).toBe(stack.idp.issuer);
    } finally {
      stack.tap.intercept = undefined;
    }
    expect(hints).toEqual(['refresh_token']);
    const replay = await fetch(`${stack.bff.url}/bff/user`, {
      headers: { 'x-csrf': '1', cookie: `__Host-bff=${cookie}` },
    });
    expect(replay.status).toBe(401);
    expect(stack.logger.lines.some((l) => l.includes('revocation failed'))).toBe(true);
  });

  it('O3: a successful logout revokes the refresh token at the IdP (a later refresh with it fails)', async () => {
    const { browser } = await signIn(stack);
    const url = await logoutUrl(browser);
    const before = stack.tap.count(revocationPath);
    const res = await browser.fetch(`${stack.bff.url}${url}`, {
      navigation: true,
      initiator: `${stack.bff.url}/`,
    });
    expect(res.status).toBe(302);
    expect(stack.tap.count(revocationPath)).toBe(before + 1);
  });

  it('O4 O5: end-session carries every parameter; the landing page redirects only with the right state', async () => {
    const { browser } = await signIn(stack);
    const url = await logoutUrl(browser);
    const res = await browser.fetch(`${stack.bff.url}${url}&returnUrl=%2Fgoodbye`, {
      navigation: true,
      initiator: `${stack.bff.url}/`,
    });
    const end = new URL(res.headers.get('location')!);
    expect(end.searchParams.get('client_id')).toBe('bff');
    expect(end.searchParams.get('id_token_hint')).toMatch(/^eyJ/);
    expect(end.searchParams.get('post_logout_redirect_uri')).toBe(`${stack.bff.url}/bff/signed-out`);
    const state = end.searchParams.get('state')!;
    expect(state).toMatch(/^[A-Za-z0-9_-]{43}$/);

    for (const query of ['?state=forged', '', `?state=${state}x`]) {
      const page = await browser.fetch(`${stack.bff.url}/bff/signed-out${query}`, {
        navigation: true,
        initiator: stack.idp.issuer,
      });
      expect(page.status).toBe(200);
      expect(page.headers.get('location')).toBeNull();
      expect(page.headers.getSetCookie()).toEqual([]);
      expect(await page.text()).toContain('signed out');
    }
    const good = await browser.fetch(`${stack.bff.url}/bff/signed-out?state=${state}`, {
      navigation: true,
      initiator: stack.idp.issuer,
    });
    expect(good.status).toBe(302);
    expect(good.headers.get('location')).toBe('/goodbye');
    expect(good.headers.getSetCookie()[0]).toMatch(/^__Host-bff-logout=; Max-Age=0; Path=\/;/);
  });

  // The same refusals as /bff/login's (login-negative.test.ts), checked before the session is looked at:
  // a refused returnUrl ends nothing, whatever else the request carries.
  const foreignReturnUrls = [
    ['//evil.example'],
    ['/\\evil.example'],
    ['https://evil.example'],
    ['/%2F%2Fevil.example'],
    ['/%2fevil.example'],
    ['/%5C%5Cevil.example'],
    ['/%5cevil.example'],
    ['/..//evil.example'],
    ['/%2e%2e//evil.example'],
  ];

  describe('L14 O5 foreign returnUrl', () => {
    let signedIn: Awaited<ReturnType<typeof signIn>>['browser'];
    let url: string;
    beforeAll(async () => {
      signedIn = (await signIn(stack)).browser;
      url = await logoutUrl(signedIn);
    });

    /** A refusal: 400 problem+json, no Location, no cookie cleared, nothing sent to the IdP. */
    async function expectRefused(res: Response, revocationsBefore: number) {
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(res.headers.get('location')).toBeNull();
      expect(res.headers.getSetCookie()).toEqual([]);
      expect(await res.json()).toMatchObject({ status: 400, error: 'ERR_BFF_BAD_REQUEST' });
      expect(stack.tap.count(revocationPath)).toBe(revocationsBefore);
    }

    it.each(foreignReturnUrls)(
      'L14 O5: GET /bff/logout with the right sid and returnUrl %j → 400 problem+json, the session and its refresh token intact',
      async (returnUrl) => {
        const before = stack.tap.count(revocationPath);
        const res = await signedIn.fetch(
          `${stack.bff.url}${url}&returnUrl=${encodeURIComponent(returnUrl)}`,
          { navigation: true, initiator: `${stack.bff.url}/` },
        );
        await expectRefused(res, before);
        expect((await getUser(signedIn, stack)).status).toBe(200);
      },
    );

    it.each(foreignReturnUrls)(
      'L14 O5: POST /bff/logout with X-CSRF and returnUrl %j → 400 problem+json, the session and its refresh token intact',
      async (returnUrl) => {
        const before = stack.tap.count(revocationPath);
        const res = await signedIn.fetch(
          `${stack.bff.url}/bff/logout?returnUrl=${encodeURIComponent(returnUrl)}`,
          { method: 'POST', headers: { 'x-csrf': '1' }, initiator: `${stack.bff.url}/` },
        );
        await expectRefused(res, before);
        expect((await getUser(signedIn, stack)).status).toBe(200);
      },
    );

    it.each(foreignReturnUrls)(
      'L14 O5: anonymous GET /bff/logout with returnUrl %j → 400 problem+json, not a redirect',
      async (returnUrl) => {
        const before = stack.tap.count(revocationPath);
        const res = await fetch(`${stack.bff.url}/bff/logout?returnUrl=${encodeURIComponent(returnUrl)}`, {
          redirect: 'manual',
        });
        await expectRefused(res, before);
      },
    );

    it('L14 O5: after every refusal, the same session still logs out normally with a local returnUrl', async () => {
      const res = await signedIn.fetch(`${stack.bff.url}${url}&returnUrl=%2Fbye`, {
        navigation: true,
        initiator: `${stack.bff.url}/`,
      });
      expect(res.status).toBe(302);
      expect((await getUser(signedIn, stack)).status).toBe(401);
    });
  });

  it('O5 L14: logout returnUrl must be local; anonymous logout just goes back', async () => {
    const { browser } = await signIn(stack);
    const url = await logoutUrl(browser);
    const bad = await browser.fetch(`${stack.bff.url}${url}&returnUrl=%2F%2Fevil.example`, {
      navigation: true,
      initiator: `${stack.bff.url}/`,
    });
    expect(bad.status).toBe(400);
    expect((await getUser(browser, stack)).status).toBe(200);
    const anon = await fetch(`${stack.bff.url}/bff/logout?returnUrl=%2Fhome`, { redirect: 'manual' });
    expect(anon.status).toBe(302);
    expect(anon.headers.get('location')).toBe('/home');
  });
});
