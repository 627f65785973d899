// /bff/silent-login → IdP (prompt=none) → /bff/callback → /bff/silent-login-callback.
import { TestBrowser } from '@gatehouse/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizationParams, type Stack, signIn, startStack } from './support-core/stack.js';

describe('silent login', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack?.close());

  const message = (html: string) => {
    const m = /postMessage\((\{.*?\}), ("[^"]+")\)/.exec(html);
    return m ? { data: JSON.parse(m[1]!), target: JSON.parse(m[2]!) as string } : undefined;
  };

  it('without an IdP session: prompt=none → login_required → page posts isLoggedIn:false to our origin only', async () => {
    const browser = new TestBrowser();
    const result = await browser.follow(`${stack.bff.url}/bff/silent-login`, {
      initiator: `${stack.bff.url}/`,
    });
    expect(authorizationParams(stack, result.hops[0]!.location!).get('prompt')).toBe('none');
    expect(result.url).toMatch(new RegExp(`^${stack.bff.url}/bff/callback\\?`));
    expect(message(result.text)).toEqual({
      data: { source: 'bff-silent-login', isLoggedIn: false },
      target: stack.bff.url,
    });
    const csp = result.response.headers.get('content-security-policy')!;
    const nonce = /'nonce-([^']+)'/.exec(csp)?.[1];
    expect(nonce).toBeTruthy();
    expect(result.text).toContain(`<script nonce="${nonce}">`);
    expect(csp).toContain("default-src 'none'");
    expect(result.hops.flatMap((h) => h.setCookie).some((c) => /^__Host-bff=[^;]/.test(c))).toBe(false);
  });

  it('with an IdP session: a new BFF session is created and the page posts isLoggedIn:true', async () => {
    const { browser } = await signIn(stack);
    // Forget the BFF session but keep the IdP's cookies.
    await browser.setCookie(
      '__Host-bff=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict',
      `${stack.bff.url}/`,
    );
    const result = await browser.follow(`${stack.bff.url}/bff/silent-login`, {
      initiator: `${stack.bff.url}/`,
    });
    expect(result.url).toMatch(new RegExp(`^${stack.bff.url}/bff/callback\\?`));
    expect(message(result.text)?.data).toEqual({ source: 'bff-silent-login', isLoggedIn: true });
    expect(result.hops.at(-1)!.setCookie.some((c) => /^__Host-bff=s%3A/.test(c))).toBe(true);
    // Duende's callback route answers from the session too.
    const page = await browser.fetch(`${stack.bff.url}/bff/silent-login-callback`, {
      navigation: true,
      initiator: `${stack.bff.url}/`,
    });
    expect(message(await page.text())?.data).toEqual({ source: 'bff-silent-login', isLoggedIn: true });
  });
});
