// The forwarding layer's edges over real HTTP on loopback: upstream redirects into the BFF (SECURITY P8),
// bounded requests (P9: body and header limits, hung upstream → 504), a keep-alive connection the
// upstream closes just as it is reused (one retry on a fresh connection for idempotent calls, never a
// replayed POST), a browser that leaves mid-call, and the headers the BFF adds to proxied responses.
import { request } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { decideLocation } from '../src/lib/proxy/redirects.js';
import { type EngineHost, FakeTokens, startEngineHost } from './support-proxy/engine-host.js';
import {
  chunkedPost,
  counted,
  hangAborted,
  rawRequest,
  sseAborted,
  stallAborted,
  startBehaviourUpstream,
  startClosingUpstream,
  type TestUpstream,
} from './support-proxy/upstream.js';

const PUBLIC = 'https://app.example';
const SESSION = { cookie: 'session=alice', 'x-csrf': '1' };
const MiB = 1024 * 1024;

let upstream: TestUpstream;
let closing: Awaited<ReturnType<typeof startClosingUpstream>>;
let resetting: Awaited<ReturnType<typeof startClosingUpstream>>;
let host: EngineHost;
const tokens = new FakeTokens();

beforeAll(async () => {
  upstream = await startBehaviourUpstream();
  closing = await startClosingUpstream('close');
  resetting = await startClosingUpstream('reset');
  host = await startEngineHost(
    [
      { prefix: '/api/b', upstream: `${upstream.origin}/base` },
      // Nested under /api/b, to another upstream base: a rewrite of /api/b must not replay into it.
      { prefix: '/api/b/nested', upstream: `${upstream.origin}/other` },
      { prefix: '/api/small', upstream: `${upstream.origin}/small`, maxBodySize: MiB },
      { prefix: '/api/hung', upstream: `${upstream.origin}/h`, timeout: 0.4 },
      { prefix: '/api/stalling', upstream: `${upstream.origin}/s`, bodyTimeout: 0.3 },
      { prefix: '/api/stream', upstream: `${upstream.origin}/s`, bodyTimeout: false },
      { prefix: '/api/tight', upstream: `${upstream.origin}/t`, maxHeaderCount: 20, maxHeaderBytes: 2048 },
      { prefix: '/api/closing', upstream: `${closing.origin}/c` },
      { prefix: '/api/resetting', upstream: `${resetting.origin}/r` },
    ],
    tokens,
    PUBLIC,
  );
});

afterAll(async () => {
  await host?.close();
  await upstream?.close();
  await closing?.close();
  await resetting?.close();
});

beforeEach(() => {
  upstream.seen.length = 0;
  closing.seen.length = 0;
  resetting.seen.length = 0;
  counted.bytes = 0;
});

function problem(code: string, status: number, title: string) {
  return { type: 'about:blank', title, status, code, error: code };
}

const redirect = (status: number, to: string) =>
  `/api/b/redirect?status=${status}&to=${encodeURIComponent(to)}`;

describe('P8 upstream redirects', () => {
  for (const status of [307, 308]) {
    it(`P8: ${status} Location: <BFF origin>/bff/logout to a POST → 502 problem+json, no Location`, async () => {
      const res = await rawRequest(host.port, {
        method: 'POST',
        path: redirect(status, `${PUBLIC}/bff/logout`),
        headers: { ...SESSION, 'content-type': 'application/json' },
        body: '{"a":1}',
      });
      expect(res.status).toBe(502);
      expect(res.headers.location).toBeUndefined();
      expect(res.headers['content-type']).toBe('application/problem+json');
      expect(JSON.parse(res.body)).toEqual(problem('ERR_BFF_UPSTREAM_REDIRECT', 502, 'Bad Gateway'));
      expect(upstream.seen).toHaveLength(1); // asked once, never followed
    });
  }

  it('P8: a path-absolute Location (/bff/logout) means the upstream origin, outside the route: refused, not leaked', async () => {
    const res = await rawRequest(host.port, { path: redirect(307, '/bff/logout'), headers: SESSION });
    // Resolved against the upstream it is the upstream's own origin, outside the route's base path.
    expect(res.status).toBe(502);
    expect(res.headers.location).toBeUndefined();
  });

  it('P8: a Location on the upstream origin under the route base is rewritten to the public path', async () => {
    const absolute = await rawRequest(host.port, {
      path: redirect(302, `${upstream.origin}/base/items/7?x=1`),
      headers: SESSION,
    });
    expect(absolute.status).toBe(302);
    expect(absolute.headers.location).toBe('/api/b/items/7?x=1');
    const relative = await rawRequest(host.port, { path: redirect(308, 'items/8'), headers: SESSION });
    expect(relative.status).toBe(308);
    expect(relative.headers.location).toBe('/api/b/items/8');
    expect(JSON.stringify(absolute.headers)).not.toContain(upstream.origin);
  });

  it('P8: a Location on the upstream origin outside the route base → 502; on a 201 it is dropped', async () => {
    const outside = await rawRequest(host.port, {
      path: redirect(302, `${upstream.origin}/admin`),
      headers: SESSION,
    });
    expect(outside.status).toBe(502);
    expect(outside.headers.location).toBeUndefined();
    const created = await rawRequest(host.port, {
      path: redirect(201, `${upstream.origin}/internal/7`),
      headers: SESSION,
    });
    expect(created.status).toBe(201);
    expect(created.headers.location).toBeUndefined();
  });

  it('P8: a 307 whose Location the browser resolves onto the https BFF (protocol-relative, backslashes, a tab, https:/path) to a POST from an http upstream → 502, no Location', async () => {
    for (const to of [
      '//app.example/bff/logout',
      '//APP.example/bff/logout',
      '/\\app.example/bff/logout',
      '\\\\app.example/bff/logout',
      '/\t/app.example/bff/logout',
      'https:/bff/logout',
    ]) {
      upstream.seen.length = 0;
      const res = await rawRequest(host.port, {
        method: 'POST',
        path: redirect(307, to),
        headers: { ...SESSION, 'content-type': 'application/json' },
        body: '{"a":1}',
      });
      expect(res.status, JSON.stringify(to)).toBe(502);
      expect(res.headers.location).toBeUndefined();
      expect(JSON.parse(res.body)).toEqual(problem('ERR_BFF_UPSTREAM_REDIRECT', 502, 'Bad Gateway'));
      expect(upstream.seen).toHaveLength(1);
    }
  });

  it('P8: a DELETE answered 302 onto the BFF origin → 502 (301/302 keep every method but POST)', async () => {
    const res = await rawRequest(host.port, {
      method: 'DELETE',
      path: redirect(302, `${PUBLIC}/bff/logout`),
      headers: SESSION,
    });
    expect(res.status).toBe(502);
    expect(res.headers.location).toBeUndefined();
  });

  it('P8: a 307 rewritten onto the route is refused when its path belongs to a route nested under it (another upstream)', async () => {
    const nested = await rawRequest(host.port, {
      method: 'POST',
      path: redirect(307, `${upstream.origin}/base/nested/x`),
      headers: { ...SESSION, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(nested.status).toBe(502);
    expect(nested.headers.location).toBeUndefined();
    const own = await rawRequest(host.port, {
      method: 'POST',
      path: redirect(307, `${upstream.origin}/base/nestedX/y`),
      headers: { ...SESSION, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(own.status).toBe(307);
    expect(own.headers.location).toBe('/api/b/nestedX/y');
  });

  it('P3/P8: other origins and non-replaying redirects to the BFF pass through untouched, never followed', async () => {
    const other = await rawRequest(host.port, {
      path: redirect(307, 'https://elsewhere.example/x'),
      headers: SESSION,
    });
    expect(other.status).toBe(307);
    expect(other.headers.location).toBe('https://elsewhere.example/x');
    // A 303 makes the browser GET the page; it cannot replay the call's method and body.
    const seeOther = await rawRequest(host.port, { path: redirect(303, `${PUBLIC}/done`), headers: SESSION });
    expect(seeOther.status).toBe(303);
    expect(seeOther.headers.location).toBe(`${PUBLIC}/done`);
  });

  it('P8: a 303 (or a 302 to a GET) into the BFF endpoints → 502, no Location: the followed GET would carry the cookie and X-CSRF to /bff/logout?sid=…', async () => {
    for (const [status, method] of [
      [303, 'POST'],
      [302, 'GET'],
    ] as const) {
      const res = await rawRequest(host.port, {
        method,
        path: redirect(status, `${PUBLIC}/bff/logout?sid=s1`),
        headers: method === 'POST' ? { ...SESSION, 'content-type': 'application/json' } : SESSION,
        ...(method === 'POST' ? { body: '{}' } : {}),
      });
      expect(res.status, `${status} to a ${method}`).toBe(502);
      expect(res.headers.location).toBeUndefined();
    }
  });
});

describe('P8 decideLocation', () => {
  const route = {
    prefix: '/api/todos',
    upstreamOrigin: 'http://10.0.0.5:8080',
    upstreamBasePath: '/v1/todos',
    nestedPrefixes: ['/api/todos/admin'],
  };
  const call = {
    method: 'POST',
    upstreamPath: '/v1/todos/1?x=1',
    publicUrl: 'https://app.example/api/todos/1?x=1',
  };
  const decide = (status: number, location: string | string[], method = 'POST') =>
    decideLocation('https://app.example', route, status, location, { ...call, method });
  it.each([
    [307, 'https://app.example/bff/logout', { kind: 'refuse' }],
    [308, 'https://APP.example:443/anything', { kind: 'refuse' }],
    [302, 'https://app.example/bff/logout', { kind: 'refuse' }],
    [302, 'https://app.example/done', { kind: 'keep' }],
    [301, 'http://10.0.0.5:8080/v1/todos/2', { kind: 'rewrite', location: '/api/todos/2' }],
    [307, '/v1/todos?page=2#top', { kind: 'rewrite', location: '/api/todos?page=2#top' }],
    [307, '../todos/3', { kind: 'rewrite', location: '/api/todos/3' }],
    [302, 'http://10.0.0.5:8080/v1/todosX', { kind: 'refuse' }],
    [302, '/internal/admin', { kind: 'refuse' }],
    [201, 'http://10.0.0.5:8080/v2/x', { kind: 'drop' }],
    [201, '/v1/todos/9', { kind: 'rewrite', location: '/api/todos/9' }],
    [302, 'http://[::1', { kind: 'refuse' }],
    [302, ['/v1/todos/1', '/v1/todos/2'], { kind: 'refuse' }],
    [200, ['/a', '/b'], { kind: 'drop' }],
    [303, '//evil.example/x', { kind: 'keep' }],
    // The browser resolves the value it gets against the BFF's URL (https), not the upstream's (http):
    [307, '//app.example/bff/logout', { kind: 'refuse' }],
    [308, '//APP.example/bff/logout', { kind: 'refuse' }],
    [307, '\\\\app.example/bff/logout', { kind: 'refuse' }],
    [307, '/\\app.example/bff/logout', { kind: 'refuse' }],
    [307, '\\/app.example/bff/logout', { kind: 'refuse' }],
    [307, '/\t/app.example/bff/logout', { kind: 'refuse' }],
    [307, '/\n/app.\texample/bff/logout', { kind: 'refuse' }],
    [307, ' \t//app.example/bff/logout', { kind: 'refuse' }],
    [307, '///app.example/bff/logout', { kind: 'refuse' }],
    [307, '//app.example:443/bff/logout', { kind: 'refuse' }],
    [307, '//u:p@app.example/bff/logout', { kind: 'refuse' }],
    [307, '//app%2Eexample/bff/logout', { kind: 'refuse' }],
    [307, '//\uFF41pp.example/bff/logout', { kind: 'refuse' }],
    [307, 'https:/bff/logout', { kind: 'refuse' }],
    [307, 'https:\\bff/logout', { kind: 'refuse' }],
    [307, 'https:bff/logout', { kind: 'refuse' }],
    // Our own rewrite stays kept for replays while the browser lands on this route, and only then:
    [
      307,
      'http://10.0.0.5:8080/v1/todos//app.example/x',
      { kind: 'rewrite', location: '/api/todos//app.example/x' },
    ],
    [307, '/v1/todos/..%2f..%2fbff/logout', { kind: 'rewrite', location: '/api/todos/..%2f..%2fbff/logout' }],
    [307, '/v1/todos/%2e%2e/%2E./bff/logout', { kind: 'refuse' }],
    [307, '/v1/todos/..\\..\\bff/logout', { kind: 'refuse' }],
    [307, '/v1/todos/?\\/..#\\..', { kind: 'rewrite', location: '/api/todos/?\\/..#\\..' }],
    [307, '/v1/todos/admin/users', { kind: 'refuse' }],
    [302, '/v1/todos/admin/users', { kind: 'rewrite', location: '/api/todos/admin/users' }],
    [307, '/v1/todos/adminX', { kind: 'rewrite', location: '/api/todos/adminX' }],
  ] as const)('P8: %i Location %j → %j', (status, location, expected) => {
    expect(decide(status, location as string | string[])).toEqual(expected);
  });

  it.each([
    [302, 'DELETE', 'https://app.example/bff/logout', { kind: 'refuse' }],
    [301, 'PUT', '//app.example/bff/logout', { kind: 'refuse' }],
    [302, 'PATCH', '/v1/todos/admin/x', { kind: 'refuse' }],
    [302, 'POST', '//app.example/done', { kind: 'keep' }],
    [302, 'GET', '//app.example/done', { kind: 'keep' }],
    [303, 'DELETE', '//app.example/done', { kind: 'keep' }],
    // Into the BFF's own endpoints no redirect goes, replayed or not: the browser's GET still carries
    // the session cookie and (from fetch) X-CSRF, so /bff/logout?sid=… would sign the user out.
    [302, 'POST', '//app.example/bff/logout', { kind: 'refuse' }],
    [302, 'GET', 'https://app.example/bff/logout?sid=s1', { kind: 'refuse' }],
    [303, 'DELETE', '//app.example/bff/logout', { kind: 'refuse' }],
    [303, 'GET', '/\\app.example/BFF/logout', { kind: 'refuse' }],
    [302, 'GET', 'https://app.example/bff', { kind: 'refuse' }],
    [302, 'GET', 'https://app.example/bffx', { kind: 'keep' }],
    [307, 'GET', '//app.example/bff/logout', { kind: 'refuse' }],
    [302, 'DELETE', 'https://elsewhere.example/x', { kind: 'keep' }],
  ] as const)(
    'P8: %i to a %s, Location %j → %j (301/302 replay every method but POST; nothing goes into /bff)',
    (status, method, location, expected) => {
      expect(decide(status, location, method)).toEqual(expected);
    },
  );

  it('P8: an http BFF and an https upstream: `http:/bff/logout` and `//host` land on the BFF for the browser → refused', () => {
    const tls = { ...route, upstreamOrigin: 'https://10.0.0.5' };
    const plain = { ...call, publicUrl: 'http://app.example/api/todos/1?x=1' };
    for (const location of ['http:/bff/logout', 'http:bff/logout', '//app.example/bff/logout']) {
      expect(decideLocation('http://app.example', tls, 307, location, plain), location).toEqual({
        kind: 'refuse',
      });
    }
  });
});

/** An 11 MB-ish chunked POST through the engine host. */
const chunked = (path: string, total: number) => chunkedPost(host.port, path, SESSION, total);

describe('P9 bounded requests', () => {
  it('P9: an 11 MB POST with Content-Length → 413 before anything is sent upstream', async () => {
    const res = await rawRequest(host.port, {
      method: 'POST',
      path: '/api/b/count',
      headers: { ...SESSION, 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(11 * 1000 * 1000, 1),
    });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toEqual(problem('ERR_BFF_PROXY_BODY_TOO_LARGE', 413, 'Content Too Large'));
    expect(upstream.seen).toHaveLength(0);
    expect(counted.bytes).toBe(0);
  });

  it('P9: an 11 MB chunked POST → 413; the upstream received nothing beyond the 10 MiB limit', async () => {
    const res = await chunked('/api/b/count', 11 * 1000 * 1000);
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'ERR_BFF_PROXY_BODY_TOO_LARGE' });
    await new Promise((r) => setTimeout(r, 100));
    expect(counted.bytes).toBeLessThanOrEqual(10 * MiB);
  });

  it('P9: a route limit of 1 MiB: 1 MiB passes exactly, 1 MiB + 1 byte does not', async () => {
    const exact = await chunked('/api/small/count', MiB);
    expect(exact.status).toBe(200);
    expect(counted.bytes).toBe(MiB);
    counted.bytes = 0;
    const over = await rawRequest(host.port, {
      method: 'PUT',
      path: '/api/small/count',
      headers: { ...SESSION, 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(MiB + 1, 1),
    });
    expect(over.status).toBe(413);
    expect(counted.bytes).toBe(0);
  });

  it('P9: a hung upstream → 504 after the route timeout, and the upstream request is closed', async () => {
    const before = hangAborted.count;
    const started = performance.now();
    const res = await rawRequest(host.port, { path: '/api/hung/hang', headers: SESSION });
    expect(res.status).toBe(504);
    expect(JSON.parse(res.body)).toEqual(problem('ERR_BFF_UPSTREAM_TIMEOUT', 504, 'Gateway Timeout'));
    expect(performance.now() - started).toBeGreaterThanOrEqual(350);
    for (let i = 0; i < 40 && hangAborted.count === before; i++) await new Promise((r) => setTimeout(r, 25));
    expect(hangAborted.count).toBe(before + 1);
  });

  it('P9: headers, then a body that stalls → after the route bodyTimeout the browser response is cut (never complete) and the upstream request closed', async () => {
    const before = stallAborted.count;
    const started = performance.now();
    const cut = await rawRequest(host.port, { path: '/api/stalling/stall', headers: SESSION }).then(
      (res) => `completed with ${res.status}`,
      (err: Error) => err.message,
    );
    expect(cut).toBe('aborted');
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(3000);
    for (let i = 0; i < 40 && stallAborted.count === before; i++) await new Promise((r) => setTimeout(r, 25));
    expect(stallAborted.count).toBe(before + 1);
  });

  it('P9: bodyTimeout counts silence only: an SSE stream quieter than it is cut, the same stream on a bodyTimeout: false route runs to its end', async () => {
    const before = sseAborted.count;
    // One event after 2 s of silence: over the 0.3 s bodyTimeout, within no limit at all.
    const [limited, unlimited] = await Promise.all([
      rawRequest(host.port, { path: '/api/stalling/sse?n=1&gap=2000', headers: SESSION }).then(
        (res) => `completed with ${res.status}`,
        (err: Error) => err.message,
      ),
      rawRequest(host.port, { path: '/api/stream/sse?n=1&gap=2000', headers: SESSION }),
    ]);
    // Cut after its head (an event stream's head goes out at once) and before its first event.
    expect(limited).toBe('aborted');
    expect(unlimited.status).toBe(200);
    expect(unlimited.body).toMatch(/^id: 0\ndata: \d+\n\n$/);
    for (let i = 0; i < 40 && sseAborted.count === before; i++) await new Promise((r) => setTimeout(r, 25));
    expect(sseAborted.count).toBe(before + 1);
  });

  it('P9: time the browser takes to read does not count against bodyTimeout (a 16 MB download read after a 1 s pause arrives whole)', async () => {
    const total = 16 * MiB;
    const received = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: host.port,
          path: `/api/stalling/download?bytes=${total}`,
          headers: SESSION,
          agent: false,
        },
        (res) => {
          let bytes = 0;
          res.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
          });
          res.on('end', () => resolve(bytes));
          res.on('error', reject);
          // Not reading fills the sockets, the BFF stops reading the upstream (backpressure).
          res.pause();
          setTimeout(() => res.resume(), 1000);
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(received).toBe(total);
  });

  it('P9: too many request headers, or too many header bytes → 431, upstream not called', async () => {
    const many: Record<string, string> = { ...SESSION };
    for (let i = 0; i < 30; i++) many[`x-extra-${i}`] = 'v';
    const count = await rawRequest(host.port, { path: '/api/tight/echo', headers: many });
    expect(count.status).toBe(431);
    expect(JSON.parse(count.body)).toEqual(
      problem('ERR_BFF_PROXY_HEADERS_TOO_LARGE', 431, 'Request Header Fields Too Large'),
    );
    const big = await rawRequest(host.port, {
      path: '/api/tight/echo',
      headers: { ...SESSION, 'x-big': 'x'.repeat(3000) },
    });
    expect(big.status).toBe(431);
    // The cookie is not forwarded, so a large cookie does not count against the limit.
    const cookie = await rawRequest(host.port, {
      path: '/api/tight/echo',
      headers: { ...SESSION, cookie: `session=alice; junk=${'j'.repeat(3000)}` },
    });
    expect(cookie.status).toBe(200);
    expect(upstream.seen).toHaveLength(1);
  });
});

describe('keep-alive connections the upstream closes when they are reused', () => {
  for (const [name, getUpstream, prefix] of [
    ['FIN', () => closing, '/api/closing'],
    ['RST (ECONNRESET)', () => resetting, '/api/resetting'],
  ] as const) {
    it(`GET after the connection was closed with a ${name} → retried once on a fresh connection, never 502`, async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        statuses.push((await rawRequest(host.port, { path: `${prefix}/x${i}`, headers: SESSION })).status);
      }
      expect(statuses).toEqual([200, 200, 200, 200, 200, 200]);
      // The race really happened, and each such GET reached the upstream twice (reused, then fresh).
      expect(getUpstream().closedOnReuse()).toBeGreaterThanOrEqual(2);
      const urls = getUpstream().seen.map((r) => r.url);
      expect(urls.length).toBe(6 + getUpstream().closedOnReuse());
    });
  }

  it('a POST on a reused connection that the upstream closes is never replayed: 502', async () => {
    const first = await rawRequest(host.port, { path: '/api/closing/warm', headers: SESSION });
    expect(first.status).toBe(200);
    const post = await rawRequest(host.port, {
      method: 'POST',
      path: '/api/closing/create',
      headers: { ...SESSION, 'content-type': 'application/json' },
      body: '{"title":"once"}',
    });
    expect(post.status).toBe(502);
    expect(JSON.parse(post.body)).toMatchObject({ code: 'ERR_BFF_UPSTREAM_UNAVAILABLE' });
    expect(closing.seen.filter((r) => r.method === 'POST')).toHaveLength(1);
  });
});

describe('methods', () => {
  it('P1: TRACE (which would make the upstream echo the access token back) is refused unless a route lists it', async () => {
    const res = await rawRequest(host.port, { method: 'TRACE', path: '/api/b/echo', headers: SESSION });
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE');
    expect(upstream.seen).toHaveLength(0);
  });
});

describe('the browser side', () => {
  it('a browser that disconnects mid-call aborts the upstream request', async () => {
    const before = hangAborted.count;
    await new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port: host.port, path: '/api/b/hang', headers: SESSION });
      req.on('error', () => resolve());
      req.end();
      const wait = async () => {
        for (let i = 0; i < 80 && upstream.seen.length === 0; i++)
          await new Promise((r) => setTimeout(r, 10));
        req.destroy();
        resolve();
      };
      void wait();
    });
    expect(upstream.seen).toHaveLength(1);
    for (let i = 0; i < 40 && hangAborted.count === before; i++) await new Promise((r) => setTimeout(r, 25));
    expect(hangAborted.count).toBe(before + 1);
  });

  it('HEAD is forwarded as HEAD: headers, no body', async () => {
    const res = await rawRequest(host.port, { method: 'HEAD', path: '/api/b/echo', headers: SESSION });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.body).toBe('');
    expect(upstream.seen.map((r) => r.method)).toEqual(['HEAD']);
  });

  it('proxied responses get the security headers helmet would set, and no X-Powered-By', async () => {
    const res = await rawRequest(host.port, { path: '/api/b/echo', headers: SESSION });
    expect(res.status).toBe(200);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(res.headers['content-security-policy']).toBe("default-src 'none'; frame-ancestors 'none'");
    expect(res.headers['referrer-policy']).toBe('no-referrer');
    expect(res.headers['cross-origin-resource-policy']).toBe('same-origin');
    // https public origin → HSTS, like helmet.
    expect(res.headers['strict-transport-security']).toBe('max-age=31536000');
    expect(res.headers['x-powered-by']).toBeUndefined();
  });
});
