// P1a and P2a through the real createBff (real sample IdP, a signed-in session, a recording upstream on
// loopback): traversal hidden in path parameters never reaches the upstream, and no client header that
// steers routing, the method or the caller's identity arrives there.
import { getFreePort, type RunningIdp, startIdp, type TestBrowser } from '@gatehouse/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type RemoteApiOptions, resolveRemoteApis } from '../src/lib/proxy/options.js';
import { type BffHost, signIn, startBffHost } from './support-proxy/bff-host.js';
import { rawRequest, startBehaviourUpstream, type TestUpstream } from './support-proxy/upstream.js';

let idp: RunningIdp;
let upstream: TestUpstream;
let host: BffHost;
let baseUrl: string;
let alice: TestBrowser;
let session: Record<string, string>;

beforeAll(async () => {
  upstream = await startBehaviourUpstream();
  const port = await getFreePort();
  baseUrl = `http://127.0.0.1:${port}`;
  idp = await startIdp({ bffBaseUrl: baseUrl });
  host = await startBffHost(
    {
      issuer: idp.issuer,
      baseUrl,
      remoteApis: [
        { prefix: '/api/todos', upstream: `${upstream.origin}/api/todos` },
        { prefix: '/api/fwd', upstream: `${upstream.origin}/fwd`, xForwarded: true },
        {
          prefix: '/api/allow',
          upstream: `${upstream.origin}/allow`,
          forwardHeaders: ['Accept', 'content-type', 'x-request-id'],
        },
      ],
    },
    port,
  );
  alice = await signIn(baseUrl);
  session = {
    cookie: await alice.jar.getCookieString(`${baseUrl}/`),
    'x-csrf': '1',
    'sec-fetch-site': 'same-origin',
  };
});

afterAll(async () => {
  await host?.close();
  await idp?.close();
  await upstream?.close();
});

beforeEach(() => {
  upstream.seen.length = 0;
});

describe('P1a path parameters through the real BFF', () => {
  it('P1a: GET /api/todos/..;/..;/admin → 400, zero upstream requests', async () => {
    const res = await rawRequest(host.port, { path: '/api/todos/..;/..;/admin', headers: session });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({
      error: 'ERR_BFF_PROXY_BAD_PATH',
      code: 'ERR_BFF_PROXY_BAD_PATH',
      status: 400,
    });
    expect(upstream.seen).toHaveLength(0);
  });

  it('P1a: every path-parameter and encoded-separator variant → 400, zero upstream requests', async () => {
    for (const path of [
      '/api/todos/%2e%2e;/admin',
      '/api/todos/.;/echo',
      '/api/todos/..;x/admin',
      '/api/todos/%2E.;jsessionid=1/admin',
      '/api/todos/;x/echo',
      '/api/todos/a%3B/echo',
      '/api/todos/a%2fb/echo',
      '/api/todos/a%5Cb/echo',
      '/api/todos/%EF%BC%8E%EF%BC%8E/admin',
    ]) {
      const res = await rawRequest(host.port, { path, headers: session });
      expect(res.status, path).toBe(400);
    }
    expect(upstream.seen).toHaveLength(0);
  });

  it('P1a: the same session reaches the upstream on a plain path (the refusals above were the path)', async () => {
    const res = await rawRequest(host.port, { path: '/api/todos/a;v=1/echo', headers: session });
    expect(res.status).toBe(200);
    expect(upstream.seen.map((r) => r.url)).toEqual(['/api/todos/a;v=1/echo']);
  });
});

/** P2a: every header the browser could use to steer the upstream, each with a marker value. */
const STEERING: Record<string, string> = {
  'x-http-method-override': 'DELETE',
  'x-http-method': 'DELETE',
  'x-method-override': 'DELETE',
  'x-original-url': '/marker-admin',
  'x-rewrite-url': '/marker-admin',
  'x-forwarded-for': '6.6.6.6',
  'x-forwarded-host': 'marker.example',
  'x-forwarded-proto': 'marker',
  'x-forwarded-port': '6666',
  'x-forwarded-prefix': '/marker',
  'x-forwarded-server': 'marker.example',
  'x-forwarded-uri': '/marker-admin',
  'x-forwarded-ssl': 'on',
  forwarded: 'for=6.6.6.6;host=marker.example',
  'x-real-ip': '6.6.6.6',
  'x-client-ip': '6.6.6.6',
  'true-client-ip': '6.6.6.6',
  'cf-connecting-ip': '6.6.6.6',
  'x-cluster-client-ip': '6.6.6.6',
  'x-original-host': 'marker.example',
  'x-host': 'marker.example',
  // CGI-style stacks read X_Forwarded_For as X-Forwarded-For.
  x_forwarded_for: '6.6.6.6',
  // hop-by-hop, and a header the client names in Connection
  connection: 'keep-alive, x-marker-hop',
  'x-marker-hop': 'marker-hop',
  'keep-alive': 'timeout=5',
  te: 'trailers',
  'http2-settings': 'marker',
  'proxy-authorization': 'Basic bWFya2VyOm1hcmtlcg==',
  'proxy-connection': 'keep-alive',
};
const MARKERS = /6\.6\.6\.6|marker|6666|DELETE|bWFya2Vy/i;

/** Every header name and value the upstream received that carries a marker or a steering name. */
function leaks(headers: Record<string, string | string[] | undefined>): string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (name in STEERING && name !== 'connection') out.push(name);
    if (MARKERS.test(String(value))) out.push(`${name}: ${String(value)}`);
  }
  return out;
}

describe('P2a client headers that steer the upstream', () => {
  it('P2a: each steering, forwarding and hop-by-hop header with a marker value → the upstream sees none of them', async () => {
    const res = await rawRequest(host.port, {
      path: '/api/todos/echo',
      headers: { ...session, ...STEERING, 'x-custom': 'kept' },
    });
    expect(res.status).toBe(200);
    expect(upstream.seen).toHaveLength(1);
    const seen = upstream.seen[0]!;
    expect(seen.method).toBe('GET');
    expect(seen.url).toBe('/api/todos/echo');
    expect(leaks(seen.headers)).toEqual([]);
    // Default: no X-Forwarded-* of the BFF's own either.
    expect(Object.keys(seen.headers).filter((n) => n.startsWith('x-forwarded'))).toEqual([]);
    expect(seen.headers['x-custom']).toBe('kept');
    expect(seen.headers.cookie).toBeUndefined();
    expect(seen.headers.authorization).toMatch(/^Bearer ey/);
  });

  it('P2a: xForwarded: true → the BFF sets its own X-Forwarded-For/Proto/Host, never the browser’s', async () => {
    const res = await rawRequest(host.port, {
      path: '/api/fwd/echo',
      headers: { ...session, ...STEERING },
    });
    expect(res.status).toBe(200);
    const seen = upstream.seen[0]!;
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen.headers['x-forwarded-proto']).toBe('http');
    expect(seen.headers['x-forwarded-host']).toBe(new URL(baseUrl).host);
    const others = leaks(seen.headers).filter((l) => !/^x-forwarded-(for|proto|host)$/.test(l));
    expect(others).toEqual([]);
  });

  it('P2a allowlist: forwardHeaders forwards only the named headers (plus framing and the token)', async () => {
    const body = JSON.stringify({ a: 1 });
    const res = await rawRequest(host.port, {
      method: 'POST',
      path: '/api/allow/echo',
      headers: {
        ...session,
        ...STEERING,
        accept: 'application/json',
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
        'x-request-id': 'req-1',
        'x-custom': 'dropped',
        'user-agent': 'dropped-agent',
        'sec-fetch-mode': 'cors',
      },
      body,
    });
    expect(res.status).toBe(200);
    const seen = upstream.seen[0]!;
    // `connection: keep-alive` is the BFF's own keep-alive agent talking, not the browser's header.
    expect(seen.headers.connection).toBe('keep-alive');
    expect(Object.keys(seen.headers).sort()).toEqual(
      [
        'accept',
        'authorization',
        'connection',
        'content-length',
        'content-type',
        'host',
        'x-request-id',
      ].sort(),
    );
    expect(seen.headers['x-request-id']).toBe('req-1');
    expect((JSON.parse(res.body) as { bodyLength: number }).bodyLength).toBe(Buffer.byteLength(body));
  });
});

describe('P2a options are validated at creation', () => {
  const route = (over: Partial<RemoteApiOptions>): RemoteApiOptions[] => [
    { prefix: '/api/x', upstream: 'http://127.0.0.1:1/x', ...over },
  ];
  it.each<[string, Partial<RemoteApiOptions>, RegExp]>([
    ['a steering header', { forwardHeaders: ['X-Forwarded-For'] }, /never forwarded.*xForwarded: true/],
    ['the cookie', { forwardHeaders: ['cookie'] }, /"cookie" is never forwarded/],
    ['a hop-by-hop header', { forwardHeaders: ['connection'] }, /never forwarded/],
    ['X-Original-URL', { forwardHeaders: ['x-original-url'] }, /never forwarded/],
    ['a name with a space', { forwardHeaders: ['x bad'] }, /must be a header name/],
    ['a string instead of a list', { forwardHeaders: 'accept' as never }, /must be an array/],
    ['xForwarded as a string', { xForwarded: 'yes' as never }, /xForwarded must be true or false/],
    ['a prefix inside /bff', { prefix: '/bff/api' }, /reserved for the BFF/],
    ['a prefix inside /BFF', { prefix: '/BFF' }, /reserved for the BFF/],
  ])('P2a X5: refuses %s with a TypeError that says the fix', (_name, over, message) => {
    expect(() => resolveRemoteApis(route(over))).toThrow(TypeError);
    expect(() => resolveRemoteApis(route(over))).toThrow(message);
  });

  it('P2a: allowlist names are lower-cased, deduplicated and frozen', () => {
    const [api] = resolveRemoteApis(route({ forwardHeaders: ['Accept', 'accept', 'X-Request-Id'] }));
    expect(api?.forwardHeaders).toEqual(['accept', 'x-request-id']);
    expect(Object.isFrozen(api?.forwardHeaders)).toBe(true);
  });
});
