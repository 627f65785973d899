// The sample host: health, helmet CSP suited to an SPA, SPA or minimal page, local API guard.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { type IncomingHttpHeaders, request } from 'node:http';
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

/** What a browser sends on a page load. */
const navigation = {
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'sec-fetch-mode': 'navigate',
  'sec-fetch-dest': 'document',
};

/**
 * GET over node:http with exactly these headers. Node's fetch() cannot stand in for a page load: it
 * always sends `Sec-Fetch-Mode: cors`, whatever the caller sets.
 */
function get(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

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
    const page = await get(`${bff.url}/some/client/route`, navigation);
    expect(page.status).toBe(200);
    expect(page.body).toContain('<div id="root">');
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('upgrade-insecure-requests');
    expect(csp).toContain("frame-ancestors 'self'");
    expect(page.headers['strict-transport-security']).toBeUndefined();
    expect((await fetch(`${bff.url}/app.js`)).status).toBe(200);
  });

  it('without a SPA build: a minimal page with a sign-in link', async () => {
    const page = await get(`${spaless.url}/`, navigation);
    expect(page.body).toContain('href="/bff/login"');
  });

  it('Duende drop-in: an unknown path fetched by a script is 404 JSON, never index.html (a 404, not a JSON parse error)', async () => {
    const cases: Array<[string, Record<string, string>]> = [
      ['fetch() defaults (Sec-Fetch-Mode: cors, Accept: */*)', {}],
      ['a fetch asking for JSON', { accept: 'application/json' }],
      // A browser's fetch() always sends Sec-Fetch-Dest: empty (Node's fetch sends none; set it here).
      [
        'a fetch asking for HTML (not a navigation)',
        { accept: 'text/html', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' },
      ],
      [
        'same-origin mode',
        { accept: 'text/html', 'sec-fetch-mode': 'same-origin', 'sec-fetch-dest': 'empty' },
      ],
      ['an image request', { accept: 'text/html,image/*', 'sec-fetch-dest': 'image' }],
      [
        'a navigation that refuses HTML',
        { accept: 'text/html;q=0, */*', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' },
      ],
      [
        'a navigation without text/html',
        { accept: '*/*', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' },
      ],
    ];
    for (const [name, headers] of cases) {
      const res = await fetch(`${bff.url}/api-v2/missing/thing`, { headers });
      expect(res.status, name).toBe(404);
      expect(res.headers.get('content-type'), name).toMatch(/^application\/json/);
      expect(await res.json(), name).toEqual({ error: 'not_found' });
    }
    // Without Fetch Metadata (an old client), Accept decides.
    const route = `${bff.url}/some/client/route`;
    expect((await get(route, {})).status).toBe(404);
    expect((await get(route, { accept: 'application/json' })).status).toBe(404);
    expect((await get(route, { accept: 'text/html' })).status).toBe(200);
    // The SPA's navigations and its static files are served as before.
    const page = await get(route, navigation);
    expect(page.status).toBe(200);
    expect(page.body).toContain('<div id="root">');
    expect((await fetch(`${bff.url}/app.js`)).status).toBe(200);
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
