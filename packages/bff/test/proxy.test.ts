// Remote-API proxy behaviour (SECURITY P1–P6, X1, X4) over real HTTP on loopback: the proxy engine in an
// Express host with a stand-in token source, and small node:http upstreams that record what reached them.
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { getFreePort } from '@gatehouse/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type EngineHost, FakeTokens, startEngineHost } from './support-proxy/engine-host.js';
import {
  rawRequest,
  sseAborted,
  startBehaviourUpstream,
  startRecordingServer,
  type TestUpstream,
} from './support-proxy/upstream.js';

let upstream: TestUpstream;
let evil: TestUpstream;
let host: EngineHost;
const tokens = new FakeTokens();
const SESSION = { cookie: 'session=alice; other=1', 'x-csrf': '1' };

beforeAll(async () => {
  upstream = await startBehaviourUpstream();
  evil = await startRecordingServer();
  const closedPort = await getFreePort();
  host = await startEngineHost(
    [
      // xForwarded: this route asks for the BFF's own X-Forwarded-* (default off, SECURITY P2a).
      { prefix: '/api/b', upstream: `${upstream.origin}/base`, xForwarded: true },
      // The default maxBodySize is 10 MiB; the streaming tests send 50 MB.
      { prefix: '/api/big', upstream: `${upstream.origin}/base`, maxBodySize: 64 * 1024 * 1024 },
      { prefix: '/api/b/deeper', upstream: `${upstream.origin}/deep` },
      { prefix: '/api/client', upstream: `${upstream.origin}/c`, token: 'client' },
      { prefix: '/api/uoc', upstream: `${upstream.origin}/uoc`, token: 'user-or-client' },
      { prefix: '/api/uon', upstream: `${upstream.origin}/uon`, token: 'user-or-none' },
      { prefix: '/api/none', upstream: `${upstream.origin}/none`, token: 'none', csrf: false },
      { prefix: '/api/slow', upstream: `${upstream.origin}/slow`, timeout: 0.3 },
      { prefix: '/api/down', upstream: `http://127.0.0.1:${closedPort}/x` },
      {
        prefix: '/api/form',
        upstream: `${upstream.origin}/form`,
        allowSimpleContentTypes: ['application/x-www-form-urlencoded'],
      },
      { prefix: '/api/getonly', upstream: `${upstream.origin}/g`, methods: ['GET'] },
      { prefix: '/api/aud-a', upstream: `${upstream.origin}/a`, resource: 'urn:api-a' },
      { prefix: '/api/aud-b', upstream: `${upstream.origin}/b`, resource: 'urn:api-b' },
      {
        prefix: '/api/aud-b-client',
        upstream: `${upstream.origin}/bc`,
        token: 'client',
        resource: 'urn:api-b',
      },
    ],
    tokens,
  );
});

afterAll(async () => {
  await host?.close();
  await upstream?.close();
  await evil?.close();
});

beforeEach(() => {
  upstream.seen.length = 0;
  evil.seen.length = 0;
  tokens.refreshes = 0;
  tokens.failRefresh = false;
});

/** The one body shape of every proxy failure: problem+json with the stable code (also as `error`). */
function problem(code: string, status: number, title: string) {
  return { type: 'about:blank', title, status, code, error: code };
}

/** The request headers the /echo upstream reported. */
function upstreamHeaders(res: { json?: Record<string, unknown> }): Record<string, string> {
  return (res.json?.headers ?? {}) as Record<string, string>;
}

async function getJson(path: string, headers: Record<string, string> = SESSION) {
  const res = await rawRequest(host.port, { path, headers });
  return { ...res, json: res.body ? (JSON.parse(res.body) as Record<string, unknown>) : undefined };
}

describe('P1 route allowlist after path normalisation', () => {
  const escapes = [
    '/api/b/../admin',
    '/api/b/./echo',
    '/api/b/%2e%2e/admin',
    '/api/b/%2E%2e/admin',
    '/api/b/.%2e/admin',
    '/api/b/..%2fadmin',
    '/api/b/x%2F..%2F..%2Fadmin',
    '/api/b/x%5c..%5cadmin',
    '/api/b//evil.example/x',
    '/api/b/\\..\\admin',
    '/api/b/%252e%252e/admin',
    '/api/b/%00/echo',
    '/api/b/%zz/echo',
  ];
  for (const path of escapes) {
    it(`P1: ${path} → 400 and zero outbound requests`, async () => {
      const res = await rawRequest(host.port, { path, headers: SESSION });
      expect(res.status).toBe(400);
      expect(res.headers['content-type']).toBe('application/problem+json');
      expect(JSON.parse(res.body)).toEqual(problem('ERR_BFF_PROXY_BAD_PATH', 400, 'Bad Request'));
      expect(upstream.seen).toHaveLength(0);
    });
  }

  it('P1: absolute-form request target under a proxied prefix → 400, nothing sent anywhere', async () => {
    const res = await rawRequest(host.port, { path: `${evil.origin}/api/b/echo`, headers: SESSION });
    expect(res.status).toBe(400);
    expect(upstream.seen).toHaveLength(0);
    expect(evil.seen).toHaveLength(0);
  });

  it('P1: undeclared look-alike prefixes are not proxied (404 from the host)', async () => {
    for (const path of ['/api/bx/echo', '/API/b/echo', '/api', '/other/echo']) {
      const res = await rawRequest(host.port, { path, headers: SESSION });
      expect(res.status, path).toBe(404);
    }
    expect(upstream.seen).toHaveLength(0);
  });

  it('P1: Host: evil does not pick the upstream; it gets its own host and the configured X-Forwarded-Host', async () => {
    const res = await getJson('/api/b/echo', { ...SESSION, host: 'evil.example' });
    expect(res.status).toBe(200);
    expect(evil.seen).toHaveLength(0);
    const headers = upstreamHeaders(res);
    expect(headers.host).toBe(`127.0.0.1:${upstream.port}`);
    expect(headers['x-forwarded-host']).toBe('app.example');
  });

  it('P1: the longest declared prefix wins and the rest of the path and the query arrive as sent', async () => {
    const res = await getJson('/api/b/deeper/echo?a=1&b=%2F%20x&c&a=2');
    expect(res.json?.url).toBe('/deep/echo?a=1&b=%2F%20x&c&a=2');
    const plain = await rawRequest(host.port, {
      path: '/api/b/items/%C3%A9t%C3%A9/unknown?q=..%2F',
      headers: SESSION,
    });
    expect(plain.status).toBe(404); // the upstream's own 404 for an unknown path: it was proxied as is
    expect(upstream.seen.at(-1)?.url).toBe('/base/items/%C3%A9t%C3%A9/unknown?q=..%2F');
  });

  it('P1: per-route methods → 405 with Allow, upstream not called', async () => {
    const res = await rawRequest(host.port, {
      method: 'DELETE',
      path: '/api/getonly/echo',
      headers: SESSION,
    });
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('GET');
    expect(upstream.seen).toHaveLength(0);
  });
});

describe('P2 request header hygiene', () => {
  it('P2: Authorization: Bearer attacker is overwritten; Cookie never reaches the upstream', async () => {
    const res = await getJson('/api/b/echo', { ...SESSION, authorization: 'Bearer attacker' });
    const headers = upstreamHeaders(res);
    expect(headers.authorization).toBe(`Bearer ${tokens.current}`);
    expect(headers.cookie).toBeUndefined();
  });

  it('P2: hop-by-hop headers, headers named in Connection and client X-Forwarded-* are replaced', async () => {
    const res = await getJson('/api/b/echo', {
      ...SESSION,
      connection: 'keep-alive, x-secret-hop',
      'x-secret-hop': 'leak',
      'keep-alive': 'timeout=5',
      te: 'trailers',
      'proxy-authorization': 'Basic Zm9vOmJhcg==',
      'x-forwarded-for': '6.6.6.6',
      'x-forwarded-host': 'evil.example',
      'x-forwarded-proto': 'gopher',
      forwarded: 'for=6.6.6.6',
      'x-real-ip': '6.6.6.6',
      'x-custom': 'kept',
    });
    const headers = upstreamHeaders(res);
    expect(headers['x-secret-hop']).toBeUndefined();
    expect(headers['keep-alive']).toBeUndefined();
    expect(headers.te).toBeUndefined();
    expect(headers['proxy-authorization']).toBeUndefined();
    expect(headers.forwarded).toBeUndefined();
    expect(headers['x-real-ip']).toBeUndefined();
    expect(headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(headers['x-forwarded-host']).toBe('app.example');
    expect(headers['x-forwarded-proto']).toBe('https');
    expect(headers['x-custom']).toBe('kept');
  });

  it('P2: a request with Expect: 100-continue is filtered too (http-proxy skips its proxyReq hook then)', async () => {
    const res = await rawRequest(host.port, {
      method: 'PUT',
      path: '/api/b/echo',
      headers: {
        ...SESSION,
        authorization: 'Bearer attacker',
        expect: '100-continue',
        'content-type': 'application/json',
        'content-length': '2',
      },
      body: '{}',
    });
    expect(res.status).toBe(200);
    const headers = JSON.parse(res.body).headers as Record<string, string>;
    expect(headers.cookie).toBeUndefined();
    expect(headers.expect).toBeUndefined();
    expect(headers.authorization).toBe(`Bearer ${tokens.current}`);
  });

  it('P2: calls reuse one keep-alive connection per upstream', async () => {
    for (let i = 0; i < 5; i++) await getJson('/api/b/echo');
    const ports = new Set(upstream.seen.map((r) => r.remotePort));
    expect(upstream.seen).toHaveLength(5);
    expect(ports.size).toBe(1);
  });
});

describe('P3 upstream responses', () => {
  it('P3: a 307 to another origin is passed through, never followed (evil receives nothing)', async () => {
    const to = `${evil.origin}/steal`;
    const res = await getJson(`/api/b/redirect?to=${encodeURIComponent(to)}`);
    expect(res.status).toBe(307);
    expect(res.headers.location).toBe(to);
    await new Promise((r) => setTimeout(r, 50));
    expect(evil.seen).toHaveLength(0);
    expect(upstream.seen).toHaveLength(1);
  });

  it('P3/X2: upstream Set-Cookie and Access-Control-* are not relayed; other headers are', async () => {
    const res = await rawRequest(host.port, { path: '/api/b/set-cookie', headers: SESSION });
    expect(res.status).toBe(200);
    expect(res.headers['set-cookie']).toBeUndefined();
    // X2: an upstream cannot grant CORS access to the BFF's origin.
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    expect(res.headers['access-control-allow-credentials']).toBeUndefined();
    expect(res.headers['x-upstream']).toBe('yes');
    expect(res.body).toBe('cookie');
  });
});

describe('P4/P5 tokens per route type', () => {
  it('P5: no session on a user route → 401 JSON, no Location, upstream not called', async () => {
    const res = await getJson('/api/b/echo', { 'x-csrf': '1' });
    expect(res.status).toBe(401);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.headers.location).toBeUndefined();
    expect(res.json).toEqual(problem('ERR_BFF_NO_SESSION', 401, 'Unauthorized'));
    expect(upstream.seen).toHaveLength(0);
  });

  it('P4: each upstream gets a token for its own resource, never another API’s', async () => {
    const a = upstreamHeaders(await getJson('/api/aud-a/echo'));
    const b = upstreamHeaders(await getJson('/api/aud-b/echo'));
    const bClient = upstreamHeaders(await getJson('/api/aud-b-client/echo'));
    expect(a.authorization).toBe(`Bearer ${tokens.current}@urn:api-a`);
    expect(b.authorization).toBe(`Bearer ${tokens.current}@urn:api-b`);
    expect(bClient.authorization).toBe('Bearer client-token@urn:api-b');
  });

  it('P4: client route sends the client token, with or without a session', async () => {
    for (const headers of [SESSION, { 'x-csrf': '1' }]) {
      const res = await getJson('/api/client/echo', headers);
      expect(upstreamHeaders(res).authorization).toBe('Bearer client-token');
    }
  });

  it('P4: user-or-client sends the user token when signed in, else the client token', async () => {
    const signedIn = await getJson('/api/uoc/echo');
    expect(upstreamHeaders(signedIn).authorization).toBe(`Bearer ${tokens.current}`);
    const anonymous = await getJson('/api/uoc/echo', { 'x-csrf': '1' });
    expect(upstreamHeaders(anonymous).authorization).toBe('Bearer client-token');
  });

  it('P4: user-or-none sends the user token when signed in, else no Authorization at all', async () => {
    const signedIn = await getJson('/api/uon/echo');
    expect(upstreamHeaders(signedIn).authorization).toBe(`Bearer ${tokens.current}`);
    const anonymous = await getJson('/api/uon/echo', { 'x-csrf': '1', authorization: 'Bearer attacker' });
    expect(anonymous.status).toBe(200);
    expect(upstreamHeaders(anonymous).authorization).toBeUndefined();
  });

  it('P4: none never sends a token, even with a session and a browser Authorization', async () => {
    const res = await getJson('/api/none/echo', {
      cookie: 'session=alice',
      authorization: 'Bearer attacker',
    });
    expect(res.status).toBe(200);
    const headers = upstreamHeaders(res);
    expect(headers.authorization).toBeUndefined();
    expect(headers.cookie).toBeUndefined();
  });
});

describe('P6 one refresh and one retry on invalid_token, idempotent methods only', () => {
  it('P6: GET to an upstream that always answers invalid_token → 1 refresh, 2 upstream calls, SPA gets 401', async () => {
    const res = await getJson('/api/b/always-401');
    expect(res.status).toBe(401);
    expect(tokens.refreshes).toBe(1);
    expect(upstream.seen).toHaveLength(2);
    expect(upstream.seen[1]?.headers.authorization).toBe('Bearer user-token-2');
  });

  it('P6: GET succeeds on the retry with the refreshed token', async () => {
    const res = await getJson('/api/b/401-unless?token=user-token-2');
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ authorization: 'Bearer user-token-2' });
    expect(tokens.refreshes).toBe(1);
    expect(upstream.seen).toHaveLength(2);
  });

  it('P6: a POST is never replayed (0 refreshes, 1 upstream call, 401)', async () => {
    const res = await rawRequest(host.port, {
      method: 'POST',
      path: '/api/b/always-401',
      headers: { ...SESSION, 'content-type': 'application/json' },
      body: '{"x":1}',
    });
    expect(res.status).toBe(401);
    expect(tokens.refreshes).toBe(0);
    expect(upstream.seen).toHaveLength(1);
  });

  it('P6: a 401 without error="invalid_token" is passed through without a refresh', async () => {
    const res = await getJson('/api/b/plain-401');
    expect(res.status).toBe(401);
    expect(tokens.refreshes).toBe(0);
    expect(upstream.seen).toHaveLength(1);
  });

  it('P6: a client-token route is not retried with a user refresh', async () => {
    const res = await getJson('/api/client/always-401');
    expect(res.status).toBe(401);
    expect(tokens.refreshes).toBe(0);
    expect(upstream.seen).toHaveLength(1);
  });

  it('P6/R4: refresh refused during the retry → the core error (401), no second upstream call', async () => {
    tokens.failRefresh = true;
    const res = await getJson('/api/b/always-401');
    expect(res.status).toBe(401);
    expect(res.json).toEqual(problem('ERR_BFF_SESSION_ENDED', 401, 'Unauthorized'));
    expect(upstream.seen).toHaveLength(1);
  });
});

describe('X1/X4 cross-site request checks', () => {
  it('X1: no X-CSRF header → 401 ERR_BFF_CSRF (the BFF-wide Duende status), upstream not called', async () => {
    for (const headers of [{ cookie: 'session=alice' }, { cookie: 'session=alice', 'x-csrf': '0' }] as Record<
      string,
      string
    >[]) {
      const res = await rawRequest(host.port, { method: 'POST', path: '/api/b/echo', headers });
      expect(res.status).toBe(401);
      expect(JSON.parse(res.body)).toEqual(problem('ERR_BFF_CSRF', 401, 'Unauthorized'));
    }
    expect(upstream.seen).toHaveLength(0);
  });

  it('X1: a route declared with csrf: false is reachable without the header', async () => {
    const res = await rawRequest(host.port, { path: '/api/none/echo' });
    expect(res.status).toBe(200);
  });

  it('X4: POST text/plain, form-encoded, multipart or untyped bodies → 415, upstream not called', async () => {
    for (const type of [
      'text/plain',
      'Text/Plain; charset=utf-8',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      undefined,
    ]) {
      const headers: Record<string, string> = { ...SESSION, 'content-length': '3' };
      if (type) headers['content-type'] = type;
      const res = await rawRequest(host.port, { method: 'POST', path: '/api/b/echo', headers, body: 'a=b' });
      expect(res.status, String(type)).toBe(415);
    }
    expect(upstream.seen).toHaveLength(0);
  });

  it('X4: JSON bodies pass; a route allowlisting form posts accepts them', async () => {
    const json = await rawRequest(host.port, {
      method: 'POST',
      path: '/api/b/echo',
      headers: { ...SESSION, 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    expect(json.status).toBe(200);
    expect(JSON.parse(json.body)).toMatchObject({ method: 'POST', bodyLength: 7 });
    const form = await rawRequest(host.port, {
      method: 'POST',
      path: '/api/form/echo',
      headers: { ...SESSION, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'a=b',
    });
    expect(form.status).toBe(200);
    const plain = await rawRequest(host.port, {
      method: 'POST',
      path: '/api/form/echo',
      headers: { ...SESSION, 'content-type': 'text/plain' },
      body: 'a=b',
    });
    expect(plain.status).toBe(415);
  });
});

describe('gateway failures', () => {
  it('502: upstream unreachable → problem+json without upstream details', async () => {
    const res = await getJson('/api/down/x');
    expect(res.status).toBe(502);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.json).toEqual(problem('ERR_BFF_UPSTREAM_UNAVAILABLE', 502, 'Bad Gateway'));
    expect(res.body).not.toMatch(/127\.0\.0\.1|ECONNREFUSED/);
  });

  it('504: upstream slower than the route timeout → problem+json after ~the timeout', async () => {
    const started = performance.now();
    const res = await getJson('/api/slow/hang');
    const elapsed = performance.now() - started;
    expect(res.status).toBe(504);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.json).toEqual(problem('ERR_BFF_UPSTREAM_TIMEOUT', 504, 'Gateway Timeout'));
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(2000);
  });
});

describe('streaming both ways', () => {
  const SIZE = 50 * 1024 * 1024;

  it('streams a 50 MB upload to the upstream intact (method and body)', async () => {
    const chunk = Buffer.alloc(1024 * 1024, 7);
    const hash = createHash('sha256');
    for (let i = 0; i < 50; i++) hash.update(chunk);
    const result = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: host.port,
          method: 'PUT',
          path: '/api/big/upload',
          headers: { ...SESSION, 'content-type': 'application/octet-stream' },
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            body += d;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      let i = 0;
      const write = () => {
        while (i < 50) {
          i += 1;
          if (!req.write(chunk)) {
            req.once('drain', write);
            return;
          }
        }
        req.end();
      };
      write();
    });
    expect(result.status).toBe(200);
    expect(JSON.parse(result.body)).toEqual({
      length: SIZE,
      sha256: hash.digest('hex'),
      contentType: 'application/octet-stream',
    });
    expect(upstream.seen[0]?.headers['transfer-encoding']).toBe('chunked');
  });

  it('streams a 50 MB download to the browser without buffering it whole', async () => {
    const firstByteAfter = await new Promise<{ total: number; firstChunkAt: number; endAt: number }>(
      (resolve, reject) => {
        const started = performance.now();
        const req = request(
          { host: '127.0.0.1', port: host.port, path: `/api/b/download?bytes=${SIZE}`, headers: SESSION },
          (res) => {
            let total = 0;
            let firstChunkAt = -1;
            res.on('data', (chunk: Buffer) => {
              if (firstChunkAt < 0) firstChunkAt = performance.now() - started;
              total += chunk.length;
            });
            res.on('end', () => resolve({ total, firstChunkAt, endAt: performance.now() - started }));
          },
        );
        req.on('error', reject);
        req.end();
      },
    );
    expect(firstByteAfter.total).toBe(SIZE);
    // The first bytes arrive long before the whole body could have been collected.
    expect(firstByteAfter.firstChunkAt).toBeLessThan(firstByteAfter.endAt / 2);
  });

  it('a browser leaving an SSE stream closes the upstream stream too (nothing left running)', async () => {
    const before = sseAborted.count;
    await new Promise<void>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: host.port, path: '/api/b/sse?n=100&gap=50', headers: SESSION },
        (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        },
      );
      req.on('error', () => {});
      req.on('close', () => resolve());
      req.once('error', reject);
      req.end();
    });
    for (let i = 0; i < 40 && sseAborted.count === before; i++) await new Promise((r) => setTimeout(r, 25));
    expect(sseAborted.count).toBe(before + 1);
  });

  it('an upstream reset mid-body reaches the browser as an aborted response, not a short success', async () => {
    const outcome = await new Promise<string>((resolve) => {
      setTimeout(() => resolve('hung'), 3000);
      const req = request(
        { host: '127.0.0.1', port: host.port, path: '/api/b/reset-mid-body', headers: SESSION },
        (res) => {
          let received = 0;
          res.on('data', (chunk: Buffer) => {
            received += chunk.length;
          });
          res.on('end', () => resolve(res.complete ? `complete ${received}` : `incomplete ${received}`));
          res.on('error', () => resolve('error'));
          res.on('aborted', () => resolve('aborted'));
        },
      );
      req.on('error', () => resolve('error'));
      req.end();
    });
    expect(['aborted', 'error']).toContain(outcome.split(' ')[0]);
  });

  it('server-sent events: the response headers reach the browser when the upstream sends them, before the first event (EventSource opens at once)', async () => {
    const started = Date.now();
    const headersAfter = await new Promise<number>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: host.port, path: '/api/b/sse?n=1&gap=1000', headers: SESSION },
        (res) => {
          resolve(Date.now() - started);
          expect(res.headers['content-type']).toBe('text/event-stream');
          res.resume();
        },
      );
      req.on('error', reject);
      req.end();
    });
    // The upstream sends its first event after 1 s; the headers must not wait for it.
    expect(headersAfter).toBeLessThan(700);
  });

  it('server-sent events arrive as they are sent (timestamps), not at the end', async () => {
    const events = await new Promise<Array<{ sentAt: number; arrivedAt: number }>>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: host.port, path: '/api/b/sse?n=4&gap=200', headers: SESSION },
        (res) => {
          const seen: Array<{ sentAt: number; arrivedAt: number }> = [];
          res.setEncoding('utf8');
          res.on('data', (text: string) => {
            for (const match of text.matchAll(/data: (\d+)/g))
              seen.push({ sentAt: Number(match[1]), arrivedAt: Date.now() });
          });
          res.on('end', () => resolve(seen));
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(events).toHaveLength(4);
    // Buffered, all four would arrive together when the 600 ms stream ends; streamed, they arrive spread
    // out like they were sent, each shortly after its own timestamp.
    const first = events[0] as { sentAt: number; arrivedAt: number };
    const last = events[3] as { sentAt: number; arrivedAt: number };
    expect(last.arrivedAt - first.arrivedAt).toBeGreaterThanOrEqual(400);
    expect(first.arrivedAt - first.sentAt).toBeLessThan(300);
  });
});
