// The sample host: health, helmet CSP suited to an SPA, SPA or minimal page, local API guard.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  getFreePort,
  type RunningBff,
  type RunningIdp,
  startBff,
  startIdp,
  TestBrowser,
} from '@gatehouse/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

describe('sample BFF host', () => {
  let idp: RunningIdp;
  let bff: RunningBff;
  let spaless: RunningBff;
  beforeAll(async () => {
    const port = await getFreePort();
    idp = await startIdp({ bffBaseUrl: `http://localhost:${port}` });
    const spaDir = mkdtempSync(join(tmpdir(), 'gatehouse-spa-'));
    writeFileSync(join(spaDir, 'index.html'), '<!doctype html><title>spa</title><div id="root"></div>');
    writeFileSync(join(spaDir, 'app.js'), 'console.log(1)');
    bff = await startBff({ port, issuer: idp.issuer, spaDir });
    spaless = await startBff({ issuer: idp.issuer, spaDir: join(spaDir, 'missing') });
  });
  afterAll(async () => {
    await bff?.close();
    await spaless?.close();
    await idp?.close();
  });

  it('GET /health → 200', async () => {
    const res = await fetch(`${bff.url}/health`);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('serves the SPA with a strict CSP (no inline script, no upgrade-insecure-requests on http)', async () => {
    const page = await fetch(`${bff.url}/some/client/route`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<div id="root">');
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('upgrade-insecure-requests');
    expect(csp).toContain("frame-ancestors 'self'");
    expect(page.headers.get('strict-transport-security')).toBeNull();
    expect((await fetch(`${bff.url}/app.js`)).status).toBe(200);
  });

  it('without a SPA build: a minimal page with a sign-in link', async () => {
    const page = await fetch(`${spaless.url}/`, { headers: { accept: 'text/html' } });
    expect(await page.text()).toContain('href="/bff/login"');
  });

  it('unknown API paths are 404 JSON, never the SPA page', async () => {
    const res = await fetch(`${bff.url}/api/nope`, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(404);
    const bffRes = await fetch(`${bff.url}/bff/nope`);
    expect(bffRes.status).toBe(404);
    expect(await bffRes.json()).toEqual({ error: 'ERR_BFF_NOT_FOUND' });
  });

  it('GET /local/whoami: 401 JSON anonymous; the user (and no token) when signed in', async () => {
    expect((await fetch(`${bff.url}/local/whoami`, { headers: { 'x-csrf': '1' } })).status).toBe(401);
    const browser = new TestBrowser();
    await browser.login(`${bff.url}/bff/login`, { username: 'alice', password: 'alice' });
    const res = await browser.fetch(`${bff.url}/local/whoami`, {
      headers: { 'x-csrf': '1' },
      initiator: `${bff.url}/`,
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      sub: 'alice',
      name: 'Alice Liddell',
      email: 'alice@example.com',
      hasAccessToken: true,
    });
  });

  it('L6: a sign-in refused at the IdP lands in the SPA as /?error=<code>, with no session', async () => {
    const browser = new TestBrowser();
    const start = await browser.follow(`${bff.url}/bff/login`);
    const authorize = start.hops.find((hop) => hop.url.startsWith(`${idp.issuer}/auth`));
    const state = new URL(authorize!.url).searchParams.get('state')!;
    const callback = new URL(`${bff.url}/bff/callback`);
    callback.searchParams.set('error', 'access_denied');
    callback.searchParams.set('error_description', '<script>alert(1)</script>');
    callback.searchParams.set('state', state);
    callback.searchParams.set('iss', idp.issuer);
    const res = await browser.fetch(callback, { navigation: true, initiator: `${idp.issuer}/` });
    expect(res.status).toBe(302);
    expect(new URL(res.headers.get('location')!, bff.url).href).toBe(`${bff.url}/?error=access_denied`);
    expect(res.headers.getSetCookie().filter((c) => c.startsWith('__Host-bff='))).toEqual([]);
  });
});
