import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertNoSecrets,
  authorizationParams,
  getUser,
  SESSION_SECRET,
  type Stack,
  sessionCookie,
  signIn,
  startStack,
} from './support-core/stack.js';

describe('login → /bff/user → logout round trip', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack?.close());

  it('L1 L2 L3 L13 L15 S1 O2 O4: every hop has the right Location and Set-Cookie', async () => {
    const { browser, result } = await signIn(stack, 'alice', '/after-login');
    const hops = result.hops;
    const login = hops[0]!;
    expect(login.url).toBe(`${stack.bff.url}/bff/login?returnUrl=%2Fafter-login`);
    expect(login.status).toBe(302);
    const authz = new URL(login.location!);
    expect(authz.origin).toBe(stack.idp.issuer);
    // The sample IdP advertises PAR, so the default ('auto') pushes: the browser sees only client_id
    // and request_uri (L16); the request itself is the pushed one.
    expect([...authz.searchParams.keys()].sort()).toEqual(['client_id', 'request_uri']);
    const request = authorizationParams(stack, authz);
    expect(request.get('response_type')).toBe('code');
    expect(request.get('code_challenge_method')).toBe('S256');
    expect(request.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(request.get('state')!.length).toBeGreaterThanOrEqual(43);
    expect(request.get('nonce')!.length).toBeGreaterThanOrEqual(43);
    expect(request.get('redirect_uri')).toBe(`${stack.bff.url}/bff/callback`);
    expect(request.get('client_id')).toBe('bff');
    expect(request.get('scope')).toBe('openid profile email offline_access api');
    expect(login.setCookie).toHaveLength(1);
    expect(login.setCookie[0]).toMatch(
      /^__Host-bff-tx-[A-Za-z0-9_-]{16}=\d{10}\.[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+; Max-Age=600; Path=\/; HttpOnly; Secure; SameSite=Lax$/,
    );

    const callback = hops.find((h) => h.url.startsWith(`${stack.bff.url}/bff/callback`))!;
    expect(callback.status).toBe(302);
    expect(callback.location).toBe(`${stack.bff.url}/after-login`);
    const sessionSet = callback.setCookie.find((c) => c.startsWith('__Host-bff='))!;
    expect(sessionSet).toMatch(
      /^__Host-bff=s%3A[A-Za-z0-9_-]{43}\.[A-Za-z0-9%+/]+; Path=\/; HttpOnly; Secure; SameSite=Strict$/,
    );
    expect(sessionSet).not.toMatch(/Domain/i);
    expect(callback.setCookie.some((c) => /^__Host-bff-tx-[^=]+=; Max-Age=0; Path=\/;/.test(c))).toBe(true);
    expect(callback.rejectedCookies).toEqual([]);
    expect(result.url).toBe(`${stack.bff.url}/after-login`);

    const user = await getUser(browser, stack);
    expect(user.status).toBe(200);
    expect(user.headers.get('cache-control')).toBe('no-store');
    const claims = (await user.json()) as { type: string; value: unknown }[];
    const get = (type: string) => claims.find((c) => c.type === type)?.value;
    expect(get('sub')).toBe('alice');
    expect(get('bff:session_expires_in')).toBeGreaterThan(0);
    const logoutUrl = get('bff:logout_url') as string;
    expect(logoutUrl).toMatch(/^\/bff\/logout\?sid=/);
    expect(claims.some((c) => c.type === 'nonce' || c.type === 'at_hash')).toBe(false);

    const oldCookie = await sessionCookie(browser, stack);
    const logout = await browser.fetch(`${stack.bff.url}${logoutUrl}`, {
      navigation: true,
      initiator: `${stack.bff.url}/`,
    });
    expect(logout.status).toBe(302);
    const endSession = new URL(logout.headers.get('location')!);
    expect(`${endSession.origin}${endSession.pathname}`).toBe(
      (
        (await (await fetch(`${stack.idp.issuer}/.well-known/openid-configuration`)).json()) as {
          end_session_endpoint: string;
        }
      ).end_session_endpoint,
    );
    expect(endSession.searchParams.get('client_id')).toBe('bff');
    expect(endSession.searchParams.get('post_logout_redirect_uri')).toBe(`${stack.bff.url}/bff/signed-out`);
    expect(endSession.searchParams.get('id_token_hint')).toMatch(/^ey/);
    expect(endSession.searchParams.get('state')!.length).toBeGreaterThanOrEqual(43);
    const setCookies = logout.headers.getSetCookie();
    expect(setCookies).toContain(
      '__Host-bff=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=Strict',
    );
    expect(
      setCookies.some((c) =>
        /^__Host-bff-logout=[^;]+; Max-Age=600; Path=\/; HttpOnly; Secure; SameSite=Lax$/.test(c),
      ),
    ).toBe(true);

    // O2: the old cookie no longer opens a session, even if the browser kept it.
    const replay = await fetch(`${stack.bff.url}/bff/user`, {
      headers: { 'x-csrf': '1', cookie: `__Host-bff=${oldCookie}` },
    });
    expect(replay.status).toBe(401);

    // Follow the IdP's end-session page back to the landing page, which redirects to returnUrl ('/').
    const back = await browser.follow(endSession, { initiator: `${stack.bff.url}/` });
    const landing = back.hops.find((h) => h.url.startsWith(`${stack.bff.url}/bff/signed-out`));
    expect(landing?.status).toBe(302);
    expect(landing?.location).toBe(`${stack.bff.url}/`);

    // S3: no access or refresh token, and no secret, in any header of any hop, the user body or a log
    // line. (The ID token travels only as id_token_hint to the IdP's end-session endpoint, O4.)
    const idToken = endSession.searchParams.get('id_token_hint')!;
    const seen = [
      ...[...hops, ...back.hops].map((h) => JSON.stringify(h)),
      JSON.stringify(claims),
      JSON.stringify([...logout.headers]),
      ...stack.logger.lines,
    ].join('\n');
    assertNoSecrets(seen.replaceAll(idToken, '<id_token_hint>'), [
      ...stack.tap.tokens,
      SESSION_SECRET,
      'bff-secret',
    ]);
    expect(stack.tap.tokens.size).toBeGreaterThanOrEqual(3);
  });
});
