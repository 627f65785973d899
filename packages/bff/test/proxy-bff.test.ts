// The remote-API proxy inside the real createBff, against the real sample IdP and the real sample API:
// each token type reaches the API with the right token (SECURITY P2, P4, P5).
import { createServer } from 'node:http';
import { getFreePort, type RunningApi, type RunningIdp, startApi, startIdp } from '@gatehouse/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BffHost, signIn, spaFetch, startBffHost } from './support-proxy/bff-host.js';

let idp: RunningIdp;
let api: RunningApi;
let host: BffHost;
let baseUrl: string;

beforeAll(async () => {
  const port = await getFreePort();
  baseUrl = `http://127.0.0.1:${port}`;
  idp = await startIdp({ bffBaseUrl: baseUrl });
  api = await startApi({ issuer: idp.issuer });
  host = await startBffHost(
    {
      issuer: idp.issuer,
      baseUrl,
      remoteApis: [
        { prefix: '/api/todos', upstream: `${api.url}/api/todos` },
        { prefix: '/api/reports', upstream: `${api.url}/api/reports`, token: 'client', scope: 'api.reports' },
        { prefix: '/api/me', upstream: `${api.url}/api/whoami` },
        {
          prefix: '/api/me-for-api',
          upstream: `${api.url}/api/whoami`,
          resource: 'urn:gatehouse:sample-api',
        },
        {
          prefix: '/api/anyone',
          upstream: `${api.url}/api/whoami`,
          token: 'user-or-client',
          scope: 'api.reports',
        },
        { prefix: '/api/echo-maybe', upstream: `${api.url}/api/echo`, token: 'user-or-none' },
        { prefix: '/api/echo-anon', upstream: `${api.url}/api/echo`, token: 'none' },
      ],
    },
    port,
  );
});

afterAll(async () => {
  await host?.close();
  await api?.close();
  await idp?.close();
});

interface Caller {
  kind: string;
  sub: string;
  client_id: string;
  scopes: string[];
}

describe('token types reach the sample API with the right token', () => {
  it('P4 user: the signed-in user token (sub alice, client bff, scope api); todos round-trip', async () => {
    const browser = await signIn(baseUrl);
    const me = await spaFetch(browser, baseUrl, '/api/me');
    expect(me.status).toBe(200);
    const caller = (await me.json()) as Caller;
    expect(caller).toMatchObject({ kind: 'user', sub: 'alice', client_id: 'bff' });
    expect(caller.scopes).toContain('api');

    const created = await spaFetch(browser, baseUrl, '/api/todos', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'proxied' }),
    });
    expect(created.status).toBe(201);
    const list = await spaFetch(browser, baseUrl, '/api/todos');
    expect(list.status).toBe(200);
    expect(JSON.stringify(await list.json())).toContain('proxied');
  });

  it('P4 resource: a route with a resource indicator gets a token whose aud is that API', async () => {
    const browser = await signIn(baseUrl);
    const res = await spaFetch(browser, baseUrl, '/api/me-for-api');
    expect(res.status).toBe(200);
    const caller = (await res.json()) as Caller & { aud: string | string[] };
    expect(caller.sub).toBe('alice');
    expect([caller.aud].flat()).toContain('urn:gatehouse:sample-api');
  });

  it('P5 user route without a session → 401 JSON, never a redirect', async () => {
    const res = await fetch(`${baseUrl}/api/todos`, { headers: { 'x-csrf': '1' }, redirect: 'manual' });
    expect(res.status).toBe(401);
    expect(res.headers.get('location')).toBeNull();
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(await res.json()).toEqual({
      type: 'about:blank',
      title: 'Unauthorized',
      status: 401,
      code: 'ERR_BFF_NO_SESSION',
      error: 'ERR_BFF_NO_SESSION',
    });
  });

  it('P4 client: a client-credentials token of the BFF, without any session', async () => {
    const res = await fetch(`${baseUrl}/api/reports`, { headers: { 'x-csrf': '1' } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ requestedBy: 'bff' });
  });

  it('P4 user-or-client: the user when signed in, the BFF client otherwise', async () => {
    const browser = await signIn(baseUrl, 'bob');
    const signedIn = (await (await spaFetch(browser, baseUrl, '/api/anyone')).json()) as Caller;
    expect(signedIn).toMatchObject({ kind: 'user', sub: 'bob' });
    const anonymous = await fetch(`${baseUrl}/api/anyone`, { headers: { 'x-csrf': '1' } });
    expect(anonymous.status).toBe(200);
    const client = (await anonymous.json()) as Caller;
    expect(client).toMatchObject({ kind: 'client', client_id: 'bff' });
    expect(client.scopes).toContain('api.reports');
  });

  it('P4 user-or-none: the user when signed in, no Authorization at all otherwise', async () => {
    const browser = await signIn(baseUrl);
    const signedIn = (await (await spaFetch(browser, baseUrl, '/api/echo-maybe')).json()) as {
      auth: Caller | null;
    };
    expect(signedIn.auth).toMatchObject({ sub: 'alice' });
    const anonymous = (await (
      await fetch(`${baseUrl}/api/echo-maybe`, {
        headers: { 'x-csrf': '1', authorization: 'Bearer attacker' },
      })
    ).json()) as { auth: unknown; headerNames: string[] };
    expect(anonymous.auth).toBeNull();
    expect(anonymous.headerNames).not.toContain('authorization');
  });

  it('P2 none: a signed-in browser call reaches the API with neither Cookie nor Authorization', async () => {
    const browser = await signIn(baseUrl);
    const res = await spaFetch(browser, baseUrl, '/api/echo-anon/x?y=1', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: 'Bearer attacker',
        'x-forwarded-host': 'evil',
      },
      body: '{"a":1}',
    });
    expect(res.status).toBe(200);
    const echo = (await res.json()) as {
      auth: unknown;
      method: string;
      path: string;
      query: Record<string, string>;
      headerNames: string[];
      headers: Record<string, string>;
      body: string;
    };
    expect(echo.auth).toBeNull();
    expect(echo.headerNames).not.toContain('cookie');
    expect(echo.headerNames).not.toContain('authorization');
    expect(echo).toMatchObject({ method: 'POST', path: '/api/echo/x', query: { y: '1' }, body: '{"a":1}' });
    // P2a: the browser's X-Forwarded-Host is dropped and this route does not ask for the BFF's own.
    expect(echo.headers['x-forwarded-host']).toBeUndefined();
  });

  it('X1 proxied call without X-CSRF → 401 ERR_BFF_CSRF inside the real BFF', async () => {
    const browser = await signIn(baseUrl);
    const res = await browser.fetch(`${baseUrl}/api/me`, { initiator: `${baseUrl}/` });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({
      type: 'about:blank',
      title: 'Unauthorized',
      status: 401,
      code: 'ERR_BFF_CSRF',
      error: 'ERR_BFF_CSRF',
    });
  });
});

describe('bff.handleRequest: the fast path ahead of Express', () => {
  it('P2/P4/X3: proxies remote-API calls on a plain node:http server and leaves every other path to the host', async () => {
    const fastPort = await getFreePort();
    const fastUrl = `http://127.0.0.1:${fastPort}`;
    const hostSaw: string[] = [];
    const server = createServer((req, res) => {
      if (host.bff.handleRequest(req, res)) return;
      hostSaw.push(req.url ?? '');
      res.writeHead(404, { 'content-type': 'text/plain' }).end('host');
    });
    await new Promise<void>((resolve) => server.listen(fastPort, '127.0.0.1', resolve));
    try {
      const browser = await signIn(baseUrl);
      // The session cookie is per host, not per port, so the browser's cookie goes to this server too.
      const me = await spaFetch(browser, fastUrl, '/api/me');
      expect(me.status).toBe(200);
      expect(await me.json()).toMatchObject({ kind: 'user', sub: 'alice', client_id: 'bff' });
      expect(me.headers.get('x-content-type-options')).toBe('nosniff');
      // The BFF's own endpoints and unknown paths are the host's.
      expect((await spaFetch(browser, fastUrl, '/bff/user')).status).toBe(404);
      expect((await spaFetch(browser, fastUrl, '/api/unknown')).status).toBe(404);
      expect(hostSaw).toEqual(['/bff/user', '/api/unknown']);
      // The same checks as through the router: path escapes, CSRF header, cross-site writes.
      expect((await spaFetch(browser, fastUrl, '/api/me/..%2fadmin')).status).toBe(400);
      expect((await browser.fetch(`${fastUrl}/api/me`, { initiator: `${fastUrl}/` })).status).toBe(401);
      const crossSite = await fetch(`${fastUrl}/api/todos`, {
        method: 'POST',
        headers: { 'x-csrf': '1', 'sec-fetch-site': 'cross-site', 'content-type': 'application/json' },
        body: '{}',
      });
      expect(crossSite.status).toBe(403);
      expect(await crossSite.json()).toEqual({ error: 'ERR_BFF_CROSS_SITE' });
      expect(hostSaw).toHaveLength(2);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
