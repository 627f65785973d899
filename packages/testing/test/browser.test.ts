import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseForms, siteOf, TestBrowser } from '../src/browser.js';

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

async function serve(handler: Handler): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, res, Buffer.concat(chunks).toString()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

/** Echoes what the browser sent: path, method, cookie header, sec-fetch-site, origin, body. */
const echo = (req: IncomingMessage, res: ServerResponse, body: string) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(
    JSON.stringify({
      path: req.url,
      method: req.method,
      cookie: req.headers.cookie ?? '',
      site: req.headers['sec-fetch-site'],
      origin: req.headers.origin,
      body,
    }),
  );
};

let app: { server: Server; port: number };
let other: { server: Server; port: number };
let A: string; // http://localhost:<port>: the "app" site
let B: string; // http://127.0.0.1:<port>: another site (like the IdP in the samples)

beforeAll(async () => {
  app = await serve((req, res, body) => {
    const url = new URL(req.url ?? '/', 'http://x');
    switch (url.pathname) {
      case '/set':
        res.writeHead(200, {
          'set-cookie': [
            '__Host-sess=s1; Path=/; Secure; HttpOnly; SameSite=Strict',
            'tx=t1; Path=/cb; HttpOnly; SameSite=Lax',
            'open=o1; Path=/; Secure; SameSite=None',
            'short=x; Path=/; Max-Age=1',
          ],
        });
        res.end('ok');
        return;
      case '/bad-host':
        // __Host- cookies must have Path=/ and no Domain: a browser refuses this one.
        res.writeHead(200, { 'set-cookie': '__Host-bad=1; Path=/sub; Secure' });
        res.end('ok');
        return;
      case '/none-insecure':
        res.writeHead(200, { 'set-cookie': ['n=1; Path=/; SameSite=None', 'd=1; Path=/'] });
        res.end('ok');
        return;
      case '/clear':
        res.writeHead(200, {
          'set-cookie': '__Host-sess=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0',
        });
        res.end('ok');
        return;
      case '/redirect-303':
        res.writeHead(303, { location: '/cb/landing' }).end();
        return;
      case '/redirect-307':
        res.writeHead(307, { location: '/cb/echo' }).end();
        return;
      case '/loop':
        res.writeHead(302, { location: '/loop' }).end();
        return;
      case '/form':
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(`<html><body>
          <form id="f1" method="post" action="/cb/echo"><input type="hidden" name="a" value="1&amp;2"><input name="q" value='x"y'>
          <input type="checkbox" name="c1" value="on"><input type="checkbox" name="c2" value="yes" checked>
          <select name="s"><option value="1">one</option><option value="2" selected>two</option></select>
          <textarea name="t">hi &lt;there&gt;</textarea><button type="submit" name="go" value="x">Go</button></form>
          <form action="https://elsewhere.example/x"><input name="z" value="9"></form></body></html>`);
        return;
      case '/autosubmit':
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(
          '<form data-autosubmit method="post" action="/cb/echo"><input type="hidden" name="auto" value="yes"></form>',
        );
        return;
      default:
        echo(req, res, body);
    }
  });
  other = await serve((req, res, body) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/bounce') {
      // A cross-site hop in the middle of a chain, like an IdP redirecting back to the app.
      res.writeHead(302, { location: `${A}/cb/echo` }).end();
      return;
    }
    echo(req, res, body);
  });
  A = `http://localhost:${app.port}`;
  B = `http://127.0.0.1:${other.port}`;
});

afterAll(() => {
  for (const s of [app?.server, other?.server]) {
    s?.close();
    s?.closeAllConnections();
  }
});

const sent = async (res: Response) =>
  (await res.json()) as {
    cookie: string;
    site: string;
    origin?: string;
    method: string;
    body: string;
    path: string;
  };

describe('TestBrowser cookie jar', () => {
  it('stores Secure and __Host- cookies over http on loopback and honours Path', async () => {
    const browser = new TestBrowser();
    await browser.fetch(`${A}/set`);
    expect((await browser.cookies(`${A}/`)).map((c) => c.key).sort()).toEqual([
      '__Host-sess',
      'open',
      'short',
    ]);
    expect((await browser.cookies(`${A}/cb/x`)).map((c) => c.key).sort()).toEqual([
      '__Host-sess',
      'open',
      'short',
      'tx',
    ]);
    const echoed = await sent(await browser.fetch(`${A}/cb/echo`));
    expect(echoed.cookie).toContain('__Host-sess=s1');
    expect(echoed.cookie).toContain('tx=t1');
    expect((await sent(await browser.fetch(`${A}/other`))).cookie).not.toContain('tx=');
  });

  it('without allowSecureOnLocal, Secure cookies over http are refused like a strict browser would', async () => {
    const browser = new TestBrowser({ allowSecureOnLocal: false });
    const res = await browser.follow(`${A}/set`);
    expect((await browser.cookies(`${A}/`)).map((c) => c.key)).toEqual(['short']);
    expect(res.hops[0]!.rejectedCookies.map((r) => r.cookie).sort()).toEqual(['__Host-sess', 'open']);
  });

  it('refuses a __Host- cookie with a Path other than / and logs it in the hop', async () => {
    const browser = new TestBrowser();
    const res = await browser.follow(`${A}/bad-host`);
    expect(await browser.cookie(A, '__Host-bad')).toBeUndefined();
    expect(res.hops[0]!.rejectedCookies).toHaveLength(1);
  });

  it('Max-Age=0 deletes a cookie, and expired cookies are not sent', async () => {
    const browser = new TestBrowser();
    await browser.fetch(`${A}/set`);
    await browser.fetch(`${A}/clear`);
    expect(await browser.cookie(A, '__Host-sess')).toBeUndefined();
    await new Promise((r) => setTimeout(r, 1100));
    expect((await sent(await browser.fetch(`${A}/x`))).cookie).not.toContain('short=');
  });

  it('Chromium rules: SameSite=None without Secure is refused; no SameSite means Lax', async () => {
    const browser = new TestBrowser();
    const res = await browser.follow(`${A}/none-insecure`);
    expect(res.hops[0]!.rejectedCookies).toEqual([{ cookie: 'n', reason: 'SameSite=None requires Secure' }]);
    expect((await browser.cookies(A)).map((c) => [c.key, c.sameSite])).toEqual([['d', 'lax']]);
  });

  it('setCookie plants a cookie that is then sent (fixation/tampering tests)', async () => {
    const browser = new TestBrowser();
    await browser.setCookie('__Host-sess=planted; Path=/; Secure; HttpOnly; SameSite=Strict', A);
    expect((await sent(await browser.fetch(`${A}/x`))).cookie).toBe('__Host-sess=planted');
  });

  it('keeps sites apart: cookies of one host are not sent to another', async () => {
    const browser = new TestBrowser();
    await browser.fetch(`${A}/set`);
    expect((await sent(await browser.fetch(`${B}/x`))).cookie).toBe('');
  });
});

describe('TestBrowser SameSite', () => {
  it('siteOf: 127.0.0.1 and localhost are different sites; ports do not matter', () => {
    expect(siteOf(new URL(A))).not.toBe(siteOf(new URL(B)));
    expect(siteOf(new URL('http://localhost:1/'))).toBe(siteOf(new URL('http://localhost:2/')));
    expect(siteOf(new URL('https://a.example.com/'))).toBe(siteOf(new URL('https://b.example.com/')));
  });

  it('a same-site request sends Strict, Lax and None cookies', async () => {
    const browser = new TestBrowser();
    await browser.fetch(`${A}/set`);
    const echoed = await sent(await browser.fetch(`${A}/cb/echo`, { initiator: `${A}/page` }));
    expect(echoed.site).toBe('same-origin');
    expect(
      echoed.cookie
        .split('; ')
        .map((c) => c.split('=')[0])
        .sort(),
    ).toEqual(['__Host-sess', 'open', 'short', 'tx']);
  });

  it('a cross-site GET navigation sends Lax and None cookies but not Strict ones', async () => {
    const browser = new TestBrowser();
    await browser.fetch(`${A}/set`);
    const echoed = await sent(await browser.fetch(`${A}/cb/echo`, { initiator: `${B}/`, navigation: true }));
    expect(echoed.site).toBe('cross-site');
    expect(echoed.cookie).toContain('tx=t1');
    expect(echoed.cookie).toContain('open=o1');
    expect(echoed.cookie).not.toContain('__Host-sess');
  });

  it('a cross-site POST (form or fetch) sends only SameSite=None cookies, with an Origin header', async () => {
    const browser = new TestBrowser();
    await browser.fetch(`${A}/set`);
    const echoed = await sent(
      await browser.fetch(`${A}/cb/echo`, { site: 'cross-site', navigation: true, form: { x: '1' } }),
    );
    expect(echoed.method).toBe('POST');
    expect(echoed.cookie).toBe('open=o1');
    expect(echoed.origin).toBe('https://attacker.example');
    expect(echoed.body).toBe('x=1');
  });

  it('blocks third-party cookies (cross-site iframe/fetch) unless thirdPartyCookies is set', async () => {
    for (const [thirdPartyCookies, expected] of [
      [false, ''],
      [true, 'open=o1'],
    ] as const) {
      const browser = new TestBrowser({ thirdPartyCookies });
      await browser.fetch(`${A}/set`);
      const framed = await browser.follow(`${A}/cb/echo`, { initiator: `${B}/`, navigation: false });
      expect((JSON.parse(framed.text) as { cookie: string }).cookie).toBe(expected);
      const set = await browser.follow(`${A}/set`, { initiator: `${B}/`, navigation: false });
      expect(set.hops[0]!.rejectedCookies.some((r) => r.reason === 'third-party cookies are blocked')).toBe(
        !thirdPartyCookies,
      );
    }
  });

  it('a redirect chain that passes through another site withholds Strict cookies at the end', async () => {
    const browser = new TestBrowser();
    await browser.fetch(`${A}/set`);
    const res = await browser.follow(`${B}/bounce`, { initiator: `${A}/page` });
    const echoed = JSON.parse(res.text) as { cookie: string };
    expect(res.url).toBe(`${A}/cb/echo`);
    expect(echoed.cookie).toContain('tx=t1');
    expect(echoed.cookie).not.toContain('__Host-sess');
  });
});

describe('TestBrowser redirects and forms', () => {
  it('follows a 303 with GET and logs every hop', async () => {
    const browser = new TestBrowser();
    const res = await browser.follow(`${A}/redirect-303`, { method: 'POST', form: { a: '1' } });
    expect(res.hops.map((h) => [h.method, h.status, h.location])).toEqual([
      ['POST', 303, `${A}/cb/landing`],
      ['GET', 200, undefined],
    ]);
    const echoed = JSON.parse(res.text) as { method: string; body: string };
    expect(echoed).toMatchObject({ method: 'GET', body: '' });
    expect(await res.response.text()).toBe(res.text);
  });

  it('keeps the method and body on a 307', async () => {
    const browser = new TestBrowser();
    const res = await browser.follow(`${A}/redirect-307`, { method: 'POST', form: { a: '1' } });
    expect(JSON.parse(res.text)).toMatchObject({ method: 'POST', body: 'a=1', path: '/cb/echo' });
  });

  it('stops a redirect loop with an error listing the hops', async () => {
    const browser = new TestBrowser();
    await expect(browser.follow(`${A}/loop`, { maxHops: 4 })).rejects.toThrow(/more than 4 hops/);
  });

  it('parseForms reads hidden and visible fields, checked boxes, selects, textareas, entities', async () => {
    const html = await (await fetch(`${A}/form`)).text();
    const [first, second] = parseForms(html, `${A}/form`);
    expect(first).toEqual({
      action: `${A}/cb/echo`,
      method: 'POST',
      fields: { a: '1&2', q: 'x"y', c2: 'yes', s: '2', t: 'hi <there>' },
      autoSubmit: false,
      id: 'f1',
    });
    expect(second).toMatchObject({
      action: 'https://elsewhere.example/x',
      method: 'GET',
      fields: { z: '9' },
    });
  });

  it('submits self-submitting forms like a browser running their script', async () => {
    const browser = new TestBrowser();
    const res = await browser.follow(`${A}/autosubmit`);
    expect(res.hops.map((h) => h.method)).toEqual(['GET', 'POST']);
    expect(JSON.parse(res.text)).toMatchObject({ method: 'POST', body: 'auto=yes', site: 'same-origin' });
    const manual = await browser.follow(`${A}/autosubmit`, { autoSubmit: false });
    expect(manual.hops).toHaveLength(1);
  });
});
