// Every way a login can go wrong (L1–L15): each ends on a safe answer, with no session and, where the
// requirement says so, no request to the token endpoint.
import { createBff } from '@gatehouse/bff';
import { TestBrowser } from '@gatehouse/testing';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertNoSecrets,
  jsonResponse,
  SESSION_SECRET,
  type Stack,
  sessionCookie,
  signIn,
  startLoginUntilCallback,
  startStack,
} from './support-core/stack.js';

describe('login negatives', () => {
  let stack: Stack;
  let metadata: Record<string, unknown>;
  const seen: string[] = [];
  beforeAll(async () => {
    stack = await startStack();
    metadata = (await (await fetch(`${stack.idp.issuer}/.well-known/openid-configuration`)).json()) as Record<
      string,
      unknown
    >;
  });
  afterAll(async () => {
    assertNoSecrets([...seen, ...stack.logger.lines].join('\n'), [
      ...stack.tap.tokens,
      SESSION_SECRET,
      'bff-secret',
    ]);
    await stack?.close();
  });

  const tokenCalls = () => stack.tap.count('/token', 'authorization_code');
  const expectCallbackHeaders = (res: Response) => {
    // L15 on every callback outcome.
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
  };
  const expectNoSession = (res: Response) => {
    expect(res.headers.getSetCookie().some((c) => /^__Host-bff=[^;]/.test(c))).toBe(false);
  };
  const visit = async (browser: TestBrowser, url: URL | string) => {
    const res = await browser.fetch(url, { navigation: true, initiator: stack.idp.issuer });
    seen.push(await res.clone().text());
    return res;
  };

  it('L1: response_type other than code is refused at start-up', () => {
    expect(() =>
      createBff({
        issuer: stack.idp.issuer,
        clientId: 'bff',
        clientSecret: 'x',
        baseUrl: stack.bff.url,
        sessionSecret: SESSION_SECRET,
        responseType: 'token',
      }),
    ).toThrow(TypeError);
  });

  it('L2 L3: two logins get different PKCE challenges, states, nonces and transaction cookies', async () => {
    const one = await fetch(`${stack.bff.url}/bff/login`, { redirect: 'manual' });
    const two = await fetch(`${stack.bff.url}/bff/login`, { redirect: 'manual' });
    const u1 = new URL(one.headers.get('location')!);
    const u2 = new URL(two.headers.get('location')!);
    for (const p of ['code_challenge', 'state', 'nonce'])
      expect(u1.searchParams.get(p)).not.toBe(u2.searchParams.get(p));
    expect(u1.searchParams.get('code_challenge_method')).toBe('S256');
    expect(one.headers.getSetCookie()[0]!.split('=')[0]).not.toBe(
      two.headers.getSetCookie()[0]!.split('=')[0],
    );
  });

  it.each([
    ['//evil.example'],
    ['/\\evil.example'],
    ['https://evil.example'],
    ['/ok\r\nSet-Cookie: x=1'],
    ['/tab\there'],
    ['/\u0001'],
    ['javascript:alert(1)'],
    [''],
    ['evil'],
  ])('L14: returnUrl %j → 400 problem+json, no redirect, no cookie', async (returnUrl) => {
    const res = await fetch(`${stack.bff.url}/bff/login?returnUrl=${encodeURIComponent(returnUrl)}`, {
      redirect: 'manual',
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.headers.get('location')).toBeNull();
    expect(res.headers.getSetCookie()).toEqual([]);
    expect(((await res.json()) as { status: number }).status).toBe(400);
  });

  it('L14: prompt outside the allowlist → 400; a local returnUrl with a query is kept', async () => {
    expect((await fetch(`${stack.bff.url}/bff/login?prompt=%3Cx%3E`, { redirect: 'manual' })).status).toBe(
      400,
    );
    const ok = await fetch(`${stack.bff.url}/bff/login?returnUrl=%2Fa%2Fb%3Fc%3D1&prompt=login`, {
      redirect: 'manual',
    });
    expect(ok.status).toBe(302);
    expect(new URL(ok.headers.get('location')!).searchParams.get('prompt')).toBe('login');
  });

  it("L3: a callback without the transaction cookie, or with another browser's, → 400 and no token request", async () => {
    const { browser, callbackUrl } = await startLoginUntilCallback(stack);
    const before = tokenCalls();
    const bare = await fetch(callbackUrl, { redirect: 'manual' });
    expect(bare.status).toBe(400);
    expectCallbackHeaders(bare);
    expectNoSession(bare);
    const other = await startLoginUntilCallback(stack, 'bob');
    const crossed = await visit(other.browser, callbackUrl);
    expect(crossed.status).toBe(400);
    expect(tokenCalls()).toBe(before);
    // Nothing was consumed: the right browser still completes its login.
    const done = await visit(browser, callbackUrl);
    expect(done.status).toBe(302);
    expect(tokenCalls()).toBe(before + 1);
  });

  it('L4: a replayed callback (same cookie) → 400, no second token request; an expired transaction → 400', async () => {
    const { browser, callbackUrl } = await startLoginUntilCallback(stack);
    const txCookie = (await browser.cookies(`${stack.bff.url}/`)).find((c) =>
      c.key.startsWith('__Host-bff-tx-'),
    )!;
    expect((await visit(browser, callbackUrl)).status).toBe(302);
    const before = tokenCalls();
    await browser.setCookie(
      `${txCookie.key}=${txCookie.value}; Path=/; Secure; HttpOnly; SameSite=Lax`,
      `${stack.bff.url}/`,
    );
    const replay = await visit(browser, callbackUrl);
    expect(replay.status).toBe(400);
    expect(tokenCalls()).toBe(before);

    const late = await startLoginUntilCallback(stack);
    stack.clock.advance(601);
    const expired = await visit(late.browser, late.callbackUrl);
    expect(expired.status).toBe(400);
    expect(tokenCalls()).toBe(before);
  });

  it('L5: iss of another issuer, or a missing iss while the OP advertises RFC 9207 → 400, no token request', async () => {
    expect(metadata.authorization_response_iss_parameter_supported).toBe(true);
    const evil = await startLoginUntilCallback(stack);
    const before = tokenCalls();
    const wrong = new URL(evil.callbackUrl);
    wrong.searchParams.set('iss', 'https://evil.example');
    const res = await visit(evil.browser, wrong);
    expect(res.status).toBe(400);
    expectCallbackHeaders(res);
    expectNoSession(res);
    const missing = await startLoginUntilCallback(stack);
    const noIss = new URL(missing.callbackUrl);
    noIss.searchParams.delete('iss');
    expect((await visit(missing.browser, noIss)).status).toBe(400);
    expect(tokenCalls()).toBe(before);
  });

  it('L6: an IdP error response → safe page with the code only, never the description, no session', async () => {
    const { browser, callbackUrl } = await startLoginUntilCallback(stack);
    const errUrl = new URL(`${stack.bff.url}/bff/callback`);
    errUrl.searchParams.set('error', 'access_denied');
    errUrl.searchParams.set('error_description', '<script>alert(1)</script>');
    errUrl.searchParams.set('state', callbackUrl.searchParams.get('state')!);
    errUrl.searchParams.set('iss', stack.idp.issuer);
    const res = await visit(browser, errUrl);
    expect(res.status).toBe(400);
    expectCallbackHeaders(res);
    expectNoSession(res);
    const html = await res.text();
    expect(html).toContain('access_denied');
    expect(html).not.toContain('<script');
    expect(html).not.toContain('alert(1)');
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    // An error code that is not a plain token is not echoed either.
    const other = await startLoginUntilCallback(stack);
    const weird = new URL(`${stack.bff.url}/bff/callback`);
    weird.searchParams.set('error', '"><img src=x onerror=alert(1)>');
    weird.searchParams.set('state', other.callbackUrl.searchParams.get('state')!);
    weird.searchParams.set('iss', stack.idp.issuer);
    const page = await (await visit(other.browser, weird)).text();
    expect(page).not.toContain('onerror');
    expect(page).toContain('login_failed');
  });

  const withTokenResponse = async (
    rewrite: (json: Record<string, unknown>) => Promise<Response> | Response,
  ): Promise<Response> => {
    const { browser, callbackUrl } = await startLoginUntilCallback(stack);
    stack.tap.intercept = async (url, init) => {
      if (url.pathname !== '/token') return undefined;
      const real = await fetch(url, init);
      return rewrite((await real.json()) as Record<string, unknown>);
    };
    try {
      return await visit(browser, callbackUrl);
    } finally {
      stack.tap.intercept = undefined;
    }
  };

  it('L7: the token endpoint answering invalid_grant → 400 with a fresh-login link, no session', async () => {
    const res = await withTokenResponse(() => jsonResponse({ error: 'invalid_grant' }, 400));
    expect(res.status).toBe(400);
    expectCallbackHeaders(res);
    expectNoSession(res);
    expect(await res.text()).toContain('href="/bff/login"');
  });

  it('L8: token_type=mac or a missing id_token → 502, no session', async () => {
    const mac = await withTokenResponse((json) => jsonResponse({ ...json, token_type: 'mac' }));
    expect(mac.status).toBe(502);
    expectNoSession(mac);
    const noId = await withTokenResponse(({ id_token: _drop, ...json }) => jsonResponse(json));
    expect(noId.status).toBe(502);
    expectNoSession(noId);
  });

  it('L9: nonce mismatch, bad signature, wrong aud, alg none → 400, no session, no UserInfo call', async () => {
    const userinfoPath = new URL(String(metadata.userinfo_endpoint)).pathname;
    const before = stack.tap.count(userinfoPath);
    const now = Math.floor(Date.now() / 1000);
    const base = { iss: stack.idp.issuer, sub: 'alice', aud: 'bff', iat: now, exp: now + 300 };
    const cases: ((json: Record<string, unknown>) => Promise<string> | string)[] = [
      () => stack.idp.sign({ ...base, nonce: 'not-the-transaction-nonce' }),
      (json) => {
        const [h, p, s] = String(json.id_token).split('.');
        return `${h}.${p}.${s!.slice(0, -4)}${s!.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
      },
      (json) => {
        const payload = JSON.parse(Buffer.from(String(json.id_token).split('.')[1]!, 'base64url').toString());
        return stack.idp.sign({ ...payload, aud: 'someone-else' });
      },
      (json) => {
        const payload = String(json.id_token).split('.')[1];
        return `${Buffer.from('{"alg":"none"}').toString('base64url')}.${payload}.`;
      },
      (json) => {
        const payload = JSON.parse(Buffer.from(String(json.id_token).split('.')[1]!, 'base64url').toString());
        return stack.idp.sign({ ...payload, iss: 'https://evil.example' });
      },
    ];
    for (const make of cases) {
      const res = await withTokenResponse(async (json) =>
        jsonResponse({ ...json, id_token: await make(json) }),
      );
      expect(res.status).toBe(400);
      expectCallbackHeaders(res);
      expectNoSession(res);
    }
    expect(stack.tap.count(userinfoPath)).toBe(before);
  });

  it('L9: HS256 keyed with the client secret, missing iat/sub/aud, expired, iat in the future, bad azp, an untrusted extra audience → 400, no session, no UserInfo call', async () => {
    const userinfoPath = new URL(String(metadata.userinfo_endpoint)).pathname;
    const before = stack.tap.count(userinfoPath);
    const claimsOf = (json: Record<string, unknown>) =>
      JSON.parse(Buffer.from(String(json.id_token).split('.')[1]!, 'base64url').toString()) as Record<
        string,
        unknown
      >;
    const now = Math.floor(Date.now() / 1000);
    const resign = (change: Record<string, unknown>) => (json: Record<string, unknown>) => {
      const payload = { ...claimsOf(json), ...change };
      for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
      return stack.idp.sign(payload);
    };
    const cases: [string, (json: Record<string, unknown>) => Promise<string>][] = [
      [
        'HS256 with the client secret',
        (json) =>
          new SignJWT(claimsOf(json))
            .setProtectedHeader({ alg: 'HS256' })
            .sign(new TextEncoder().encode('bff-secret')),
      ],
      ['missing iat', resign({ iat: undefined })],
      ['missing sub', resign({ sub: undefined })],
      ['missing aud', resign({ aud: undefined })],
      ['expired', resign({ iat: now - 7200, exp: now - 3600 })],
      ['iat an hour in the future', resign({ iat: now + 3600, exp: now + 7200 })],
      ['azp of another client', resign({ azp: 'someone-else' })],
      ['untrusted extra audience without azp', resign({ aud: ['bff', 'untrusted'] })],
    ];
    for (const [name, make] of cases) {
      const res = await withTokenResponse(async (json) =>
        jsonResponse({ ...json, id_token: await make(json) }),
      );
      expect([name, res.status]).toEqual([name, 400]);
      expectCallbackHeaders(res);
      expectNoSession(res);
    }
    expect(stack.tap.count(userinfoPath)).toBe(before);
    // Control: the genuine token re-signed unchanged is accepted (the cases above fail for their change).
    const ok = await withTokenResponse(async (json) =>
      jsonResponse({ ...json, id_token: await resign({})(json) }),
    );
    expect(ok.status).toBe(302);
  });

  it.each([
    ['/%2F%2Fevil.example'],
    ['/%2f%2fevil.example'],
    ['/%5C%5Cevil.example'],
    ['/%5cevil.example'],
    ['/a/%2F/b'],
    ['/..//evil.example'],
    ['/../evil.example'],
    ['/./'],
    ['/a/./b'],
    ['/a/..'],
    ['/%2e%2e//evil.example'],
    ['/%2E./x'],
    ['/.%2e/x'],
    ['/%2e/x'],
    ['/..;/evil.example'],
  ])(
    'L14: returnUrl %j (encoded slash/backslash or dot segment) → 400 problem+json, no redirect, no cookie',
    async (returnUrl) => {
      const res = await fetch(`${stack.bff.url}/bff/login?returnUrl=${encodeURIComponent(returnUrl)}`, {
        redirect: 'manual',
      });
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(res.headers.get('location')).toBeNull();
      expect(res.headers.getSetCookie()).toEqual([]);
      expect(await res.json()).toMatchObject({ status: 400, error: 'ERR_BFF_BAD_REQUEST' });
    },
  );

  it.each([['/a.b/c..d/.e'], ['/x?next=%2F%2Fok-in-query'], ['/files/report%20final'], ['/a#frag']])(
    'L14: returnUrl %j (dots inside names, encoded bytes in the query) is still accepted',
    async (returnUrl) => {
      const res = await fetch(`${stack.bff.url}/bff/login?returnUrl=${encodeURIComponent(returnUrl)}`, {
        redirect: 'manual',
      });
      expect(res.status).toBe(302);
    },
  );

  it('L12: a UserInfo sub that differs from the ID token → 400, no session', async () => {
    const userinfoPath = new URL(String(metadata.userinfo_endpoint)).pathname;
    const { browser, callbackUrl } = await startLoginUntilCallback(stack);
    stack.tap.intercept = (url) =>
      url.pathname === userinfoPath ? jsonResponse({ sub: 'mallory' }) : undefined;
    try {
      const res = await visit(browser, callbackUrl);
      expect(res.status).toBe(400);
      expectNoSession(res);
    } finally {
      stack.tap.intercept = undefined;
    }
  });

  it('L13 S5: planted session ids are never adopted; login always mints a new id', async () => {
    const planted = ['attacker-chosen-id', 's%3Aattacker-chosen-id.forgedsignature'];
    const attacker = await signIn(stack, 'bob');
    const attackersOwn = (await sessionCookie(attacker.browser, stack))!;
    for (const value of [...planted, attackersOwn]) {
      const victim = new TestBrowser();
      await victim.setCookie(
        `__Host-bff=${value}; Path=/; Secure; HttpOnly; SameSite=Strict`,
        `${stack.bff.url}/`,
      );
      await victim.login(`${stack.bff.url}/bff/login`, { username: 'alice', password: 'alice' });
      const minted = (await sessionCookie(victim, stack))!;
      expect(minted).not.toBe(value);
      const mine = await fetch(`${stack.bff.url}/bff/user`, {
        headers: { 'x-csrf': '1', cookie: `__Host-bff=${minted}` },
      });
      expect(
        ((await mine.json()) as { type: string; value: unknown }[]).find((c) => c.type === 'sub')?.value,
      ).toBe('alice');
    }
    for (const value of planted) {
      const res = await fetch(`${stack.bff.url}/bff/user`, {
        headers: { 'x-csrf': '1', cookie: `__Host-bff=${value}` },
      });
      expect(res.status).toBe(401);
    }
    // The attacker's own session is still the attacker's: no mix-up with the victim's login.
    const theirs = await fetch(`${stack.bff.url}/bff/user`, {
      headers: { 'x-csrf': '1', cookie: `__Host-bff=${attackersOwn}` },
    });
    expect(
      ((await theirs.json()) as { type: string; value: unknown }[]).find((c) => c.type === 'sub')?.value,
    ).toBe('bob');
  });

  it('L13: a session id the browser presents at the callback is destroyed and replaced', async () => {
    const first = await signIn(stack, 'bob');
    const old = (await sessionCookie(first.browser, stack))!;
    // A same-site navigation to the callback carries the Strict cookie, so the pre-login id reaches it.
    const { browser, callbackUrl } = await startLoginUntilCallback(stack);
    await browser.setCookie(
      `__Host-bff=${old}; Path=/; Secure; HttpOnly; SameSite=Strict`,
      `${stack.bff.url}/`,
    );
    const done = await browser.fetch(callbackUrl, { navigation: true, initiator: `${stack.bff.url}/` });
    expect(done.status).toBe(302);
    const minted = (await sessionCookie(browser, stack))!;
    expect(minted).not.toBe(old);
    const res = await fetch(`${stack.bff.url}/bff/user`, {
      headers: { 'x-csrf': '1', cookie: `__Host-bff=${old}` },
    });
    expect(res.status).toBe(401);
  });
});

// Key rotation (L10, L10a) is covered in jwks-rotation.test.ts.
describe('error path', () => {
  it('L6: with errorPath, an IdP error redirects to <errorPath>?error=<code>, no session', async () => {
    const stack = await startStack({ bffOptions: { errorPath: '/signin-error' } });
    try {
      const { browser, callbackUrl } = await startLoginUntilCallback(stack);
      const errUrl = new URL(`${stack.bff.url}/bff/callback`);
      errUrl.searchParams.set('error', 'access_denied');
      errUrl.searchParams.set('state', callbackUrl.searchParams.get('state')!);
      errUrl.searchParams.set('iss', stack.idp.issuer);
      const res = await browser.fetch(errUrl, { navigation: true, initiator: stack.idp.issuer });
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe('/signin-error?error=access_denied');
      expect(res.headers.getSetCookie().some((c) => /^__Host-bff=[^;]/.test(c))).toBe(false);
    } finally {
      await stack.close();
    }
  });
});

describe('provider metadata checks', () => {
  it('L11 L2: issuer mismatch or no PKCE S256 → 500 configuration error, no redirect; retried after the failure', async () => {
    const stack = await startStack();
    try {
      let mode: 'issuer' | 'pkce' | undefined = 'issuer';
      stack.tap.intercept = async (url, init) => {
        if (!url.pathname.endsWith('/.well-known/openid-configuration') || !mode) return undefined;
        const json = (await (await fetch(url, init)).json()) as Record<string, unknown>;
        return jsonResponse(
          mode === 'issuer'
            ? { ...json, issuer: `${stack.idp.issuer}/other` }
            : { ...json, code_challenge_methods_supported: ['plain'] },
        );
      };
      const first = await fetch(`${stack.bff.url}/bff/login`, { redirect: 'manual' });
      expect(first.status).toBe(500);
      expect(first.headers.get('location')).toBeNull();
      expect(await first.json()).toMatchObject({ status: 500, error: 'ERR_BFF_CONFIGURATION' });
      mode = 'pkce';
      stack.clock.advance(3);
      const second = await fetch(`${stack.bff.url}/bff/login`, { redirect: 'manual' });
      expect(second.status).toBe(500);
      expect(second.headers.get('location')).toBeNull();
      mode = undefined;
      stack.clock.advance(3);
      expect((await fetch(`${stack.bff.url}/bff/login`, { redirect: 'manual' })).status).toBe(302);
    } finally {
      await stack.close();
    }
  });
});
