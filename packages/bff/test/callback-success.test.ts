// The successful callback's own response (SECURITY L15): 302 to the clean returnUrl (no code, state or
// iss in it), `Referrer-Policy: no-referrer`, `Cache-Control: no-store`, and nothing else in the body.
// The BFF runs in a bare Express host here (no helmet), so every header checked is the BFF's own.
import { getFreePort, type RunningIdp, startIdp, TestBrowser } from '@gatehouse/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** Signs in up to the IdP's redirect to the callback; returns the browser and the callback URL. */
async function untilCallback(baseUrl: string, query: string) {
  let callbackUrl: URL | undefined;
  const browser = new TestBrowser({
    fetch: async (input, init) => {
      const url = String(input instanceof Request ? input.url : input);
      if (callbackUrl === undefined && url.startsWith(`${baseUrl}/bff/callback`)) {
        callbackUrl = new URL(url);
        return new Response('held', { status: 200, headers: { 'content-type': 'text/plain' } });
      }
      return fetch(input, init);
    },
  });
  await browser.login(`${baseUrl}/bff/login${query}`, { username: 'alice', password: 'alice' });
  if (!callbackUrl) throw new Error('the login never reached /bff/callback');
  return { browser, callbackUrl };
}

import { type BffHost, startBffHost } from './support-proxy/bff-host.js';

describe('L15 the successful callback', () => {
  let idp: RunningIdp;
  let host: BffHost;
  let baseUrl: string;
  beforeAll(async () => {
    const port = await getFreePort();
    baseUrl = `http://127.0.0.1:${port}`;
    idp = await startIdp({ bffBaseUrl: baseUrl });
    host = await startBffHost({ issuer: idp.issuer, baseUrl }, port);
  });
  afterAll(async () => {
    await host?.close();
    await idp?.close();
  });

  it.each([
    ['/after-login?tab=2', '/after-login?tab=2'],
    [undefined, '/'],
  ])(
    'L15: returnUrl %j → 302 to exactly %j, Referrer-Policy no-referrer, Cache-Control no-store, session set',
    async (returnUrl, expected) => {
      const query = returnUrl === undefined ? '' : `?returnUrl=${encodeURIComponent(returnUrl)}`;
      const { browser, callbackUrl } = await untilCallback(baseUrl, query);
      expect(callbackUrl.searchParams.get('code')).toBeTruthy();
      const res = await browser.fetch(callbackUrl, { navigation: true, initiator: idp.issuer });
      expect(res.status).toBe(302);
      const location = res.headers.get('location')!;
      expect(location).toBe(expected);
      for (const leaked of ['code', 'state', 'iss', 'session_state'])
        expect(location).not.toContain(`${leaked}=`);
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.headers.getSetCookie().some((c) => /^__Host-bff=[^;]+;/.test(c))).toBe(true);
      // A redirect body that names no third party and carries nothing from the query.
      const body = await res.text();
      expect(body).not.toContain(callbackUrl.searchParams.get('code')!);
      expect(body).not.toMatch(/<(script|img|iframe|link)\b/i);
    },
  );
});
