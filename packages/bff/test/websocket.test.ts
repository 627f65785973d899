// WebSocket upgrades through the real createBff: the token goes upstream in the handshake, the browser's
// cookie does not; CSRF for WebSockets is an Origin check (SECURITY X1/X3 for upgrades, P1, P2, P5).
import { createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getFreePort, type RunningIdp, startIdp, type TestBrowser } from '@gatehouse/testing';
import { calculateJwkThumbprint, decodeJwt, EmbeddedJWK, type JWK, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { type BffHost, signIn, startBffHost } from './support-proxy/bff-host.js';

let idp: RunningIdp;
let host: BffHost;
let baseUrl: string;
let upstream: Server;
let upstreamOrigin: string;
let handshakes = 0;

beforeAll(async () => {
  // The upstream greets each connection with the headers it received, then echoes.
  upstream = createServer((_req, res) => res.end('http'));
  const wss = new WebSocketServer({ server: upstream });
  wss.on('connection', (socket, req) => {
    handshakes += 1;
    socket.send(JSON.stringify({ url: req.url, headers: req.headers }));
    socket.on('message', (data) => socket.send(`echo:${data.toString()}`));
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamOrigin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;

  const port = await getFreePort();
  baseUrl = `http://127.0.0.1:${port}`;
  idp = await startIdp({ bffBaseUrl: baseUrl });
  host = await startBffHost(
    {
      issuer: idp.issuer,
      baseUrl,
      remoteApis: [
        { prefix: '/api/live', upstream: `${upstreamOrigin}/ws`, xForwarded: true },
        { prefix: '/api/public-live', upstream: `${upstreamOrigin}/pub`, token: 'none' },
        { prefix: '/api/no-ws', upstream: `${upstreamOrigin}/nows`, websocket: false },
      ],
    },
    port,
  );
});

afterAll(async () => {
  await host?.close();
  await idp?.close();
  upstream?.closeAllConnections();
  await new Promise<void>((resolve) => (upstream ? upstream.close(() => resolve()) : resolve()));
});

type Outcome =
  | { kind: 'open'; greeting: { url: string; headers: IncomingHttpHeaders }; echo: string }
  | { kind: 'refused'; status: number; body: string }
  | { kind: 'error'; message: string };

/** Opens a WebSocket like a browser page on `origin` would, with `cookie`. */
function connect(path: string, headers: Record<string, string>, port = host.port): Promise<Outcome> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers });
    let greeting: { url: string; headers: IncomingHttpHeaders } | undefined;
    ws.on('message', (data) => {
      const text = data.toString();
      if (!greeting) {
        greeting = JSON.parse(text);
        ws.send('ping');
      } else {
        ws.close();
        resolve({ kind: 'open', greeting, echo: text });
      }
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      res.on('end', () => resolve({ kind: 'refused', status: res.statusCode ?? 0, body }));
    });
    ws.on('error', (err) => resolve({ kind: 'error', message: err.message }));
  });
}

/** A raw handshake (the ws client would normalise `%2e%2e` away before sending). */
function rawHandshake(
  path: string,
  headers: Record<string, string>,
): Promise<number | 'upgraded' | 'closed'> {
  return new Promise((resolve) => {
    const req = request({
      host: '127.0.0.1',
      port: host.port,
      path,
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        ...headers,
      },
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('upgrade', (_res, socket) => {
      socket.destroy();
      resolve('upgraded');
    });
    req.on('error', () => resolve('closed'));
    req.end();
  });
}

async function cookieOf(browser: TestBrowser): Promise<string> {
  return browser.jar.getCookieString(`${baseUrl}/api/live`);
}

describe('WebSocket upgrades on remote API prefixes', () => {
  let alice: TestBrowser;
  beforeAll(async () => {
    alice = await signIn(baseUrl);
  });

  it('P2: with a session and the BFF Origin, the handshake carries the user token and no cookie', async () => {
    const before = handshakes;
    const result = await connect('/api/live/chat?room=1', {
      cookie: await cookieOf(alice),
      origin: baseUrl,
      'x-forwarded-host': 'evil.example',
      'x-original-url': '/admin',
    });
    expect(result.kind).toBe('open');
    if (result.kind !== 'open') return;
    expect(result.greeting.url).toBe('/ws/chat?room=1');
    expect(result.greeting.headers.authorization).toMatch(/^Bearer ey/);
    expect(result.greeting.headers.cookie).toBeUndefined();
    // P2a: the route sets xForwarded, so the BFF's own value replaces the browser's; steering headers go.
    expect(result.greeting.headers['x-forwarded-host']).toBe(new URL(baseUrl).host);
    expect(result.greeting.headers['x-original-url']).toBeUndefined();
    expect(result.echo).toBe('echo:ping');
    expect(handshakes).toBe(before + 1);
  });

  it('P5: without a session → 401 JSON on the handshake, upstream never reached', async () => {
    const before = handshakes;
    const result = await connect('/api/live/chat', { origin: baseUrl });
    expect(result).toEqual({
      kind: 'refused',
      status: 401,
      body: JSON.stringify({
        type: 'about:blank',
        title: 'Unauthorized',
        status: 401,
        code: 'ERR_BFF_NO_SESSION',
        error: 'ERR_BFF_NO_SESSION',
      }),
    });
    expect(handshakes).toBe(before);
  });

  it('X3: a foreign or missing Origin → 403, even with a valid session cookie', async () => {
    const before = handshakes;
    const cookie = await cookieOf(alice);
    for (const headers of [
      { cookie, origin: 'https://evil.example' },
      { cookie, origin: 'null' },
      { cookie },
    ]) {
      const result = await connect('/api/live/chat', headers as Record<string, string>);
      expect(result).toMatchObject({ kind: 'refused', status: 403 });
    }
    expect(handshakes).toBe(before);
  });

  it('P1: a path escape in the handshake → 400; an undeclared path is closed; websocket: false → 404', async () => {
    const before = handshakes;
    const cookie = await cookieOf(alice);
    for (const path of [
      '/api/live/%2e%2e/admin',
      '/api/live/../admin',
      '/api/live//x',
      `${baseUrl}/api/live/x`,
    ]) {
      expect(await rawHandshake(path, { cookie, origin: baseUrl }), path).toBe(400);
    }
    expect(await rawHandshake('/api/live/x', { cookie, origin: baseUrl })).toBe('upgraded');
    expect((await connect('/elsewhere', { cookie, origin: baseUrl })).kind).toBe('error');
    expect(await connect('/api/no-ws/x', { cookie, origin: baseUrl })).toMatchObject({
      kind: 'refused',
      status: 404,
    });
    expect(handshakes).toBe(before + 1); // only the well-formed raw handshake
  });

  it('token type none: anonymous upgrade works and carries no Authorization', async () => {
    const result = await connect('/api/public-live/feed', {
      origin: baseUrl,
      authorization: 'Bearer attacker',
    });
    expect(result.kind).toBe('open');
    if (result.kind !== 'open') return;
    expect(result.greeting.headers.authorization).toBeUndefined();
  });
});

describe('D1: WebSocket handshakes of a DPoP-bound session', () => {
  let dpopIdp: RunningIdp;
  let dpopHost: BffHost;
  let dpopBase: string;
  beforeAll(async () => {
    const port = await getFreePort();
    dpopBase = `http://127.0.0.1:${port}`;
    dpopIdp = await startIdp({ bffBaseUrl: dpopBase });
    dpopHost = await startBffHost(
      {
        issuer: dpopIdp.issuer,
        baseUrl: dpopBase,
        dpop: true,
        remoteApis: [{ prefix: '/api/live', upstream: `${upstreamOrigin}/ws` }],
      },
      port,
    );
  });
  afterAll(async () => {
    await dpopHost?.close();
    await dpopIdp?.close();
  });

  it('D1: the handshake carries Authorization: DPoP and a proof for GET on the upstream URL, bound to the token', async () => {
    const browser = await signIn(dpopBase);
    const cookie = await browser.jar.getCookieString(`${dpopBase}/`);
    const result = await connect(
      '/api/live/chat?room=2',
      { cookie, origin: dpopBase, dpop: 'attacker-proof' },
      dpopHost.port,
    );
    expect(result.kind).toBe('open');
    if (result.kind !== 'open') return;
    const { authorization, dpop } = result.greeting.headers;
    expect(authorization).toMatch(/^DPoP ey/);
    const token = String(authorization).slice('DPoP '.length);
    const { payload, protectedHeader } = await jwtVerify(String(dpop), EmbeddedJWK, { typ: 'dpop+jwt' });
    expect(payload).toMatchObject({ htm: 'GET', htu: `${upstreamOrigin}/ws/chat` });
    expect(decodeJwt(token).cnf).toEqual({ jkt: await calculateJwkThumbprint(protectedHeader.jwk as JWK) });
  });
});
