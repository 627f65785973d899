// Graceful shutdown (issue 10 item 5): bff.close() stops taking new work (503 ERR_BFF_SHUTTING_DOWN),
// lets in-flight proxied calls and refreshes finish within its timeout, then closes the proxy's agents
// and the store it owns. Real IdP behind the fault front, a real (slow) upstream on loopback, the sample
// BFF host; and the sample host process itself on SIGTERM.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMemoryStore, type SessionStore } from '@gatehouse/bff';
import {
  connectTestRedis,
  deleteRedisPrefix,
  getFreePort,
  requireRedis,
  startBff,
  TestBrowser,
  uniqueRedisPrefix,
} from '@gatehouse/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClock, SESSION_SECRET } from './support-core/stack.js';
import { type IdpFront, startIdpFront } from './support-res/idp-front.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const redisReady = await requireRedis('sample host shutdown with Redis sessions');
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** An upstream API whose /api/todos answers after `delayMs` (or never, when negative). */
async function startSlowUpstream() {
  const state = { delayMs: 0, served: 0 };
  const server: Server = createServer((req, res) => {
    req.resume();
    if (state.delayMs < 0) return; // hangs
    setTimeout(() => {
      state.served++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('[]');
    }, state.delayMs);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    state,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

const headers = (cookie: string) => ({
  cookie: `__Host-bff=${cookie}`,
  'x-csrf': '1',
  'sec-fetch-site': 'same-origin',
});

async function signInCookie(url: string, user = 'alice'): Promise<string> {
  const browser = new TestBrowser();
  await browser.login(`${url}/bff/login`, { username: user, password: user });
  const cookie = await browser.cookie(`${url}/`, '__Host-bff');
  if (!cookie) throw new Error('no session cookie after sign-in');
  return cookie;
}

describe('bff.close(): graceful shutdown', () => {
  let front: IdpFront;
  let upstream: Awaited<ReturnType<typeof startSlowUpstream>>;
  beforeAll(async () => {
    front = await startIdpFront();
    upstream = await startSlowUpstream();
  });
  afterAll(async () => {
    await upstream?.close();
    await front?.close();
  });

  /** A fresh BFF host per test (close() is one-way); the upstream answers at once again. */
  async function host(store?: SessionStore) {
    upstream.state.delayMs = 0;
    front.fault = { kind: 'pass' };
    const port = await getFreePort();
    front.idp.setBffBaseUrl(`http://localhost:${port}`);
    const clock = createClock();
    const bff = await startBff({
      port,
      issuer: front.issuer,
      sessionSecret: SESSION_SECRET,
      apiUrl: upstream.url,
      bff: { fetch: front.fetch, clock: clock.now, httpTimeout: 1, ...(store ? { store } : {}) },
    });
    return { bff, clock };
  }

  it('new requests get 503 problem+json ERR_BFF_SHUTTING_DOWN while an in-flight proxied call finishes; close() resolves after it', async () => {
    const { bff } = await host();
    const cookie = await signInCookie(bff.url);
    upstream.state.delayMs = 800;
    const slowDone = fetch(`${bff.url}/api/todos`, { headers: headers(cookie) }).then(async (r) => ({
      status: r.status,
      body: await r.text(),
    }));
    await sleep(200);
    const servedBefore = upstream.state.served;
    // What the upstream had served when close() resolved: the slow call must be in it.
    const closing = bff.app.bff.close({ timeout: 5 }).then(() => upstream.state.served);
    await sleep(20);
    for (const path of ['/api/todos', '/bff/user', '/bff/login', '/local/whoami']) {
      const res = await fetch(`${bff.url}${path}`, { headers: headers(cookie), redirect: 'manual' });
      expect(res.status, path).toBe(503);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(res.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
      expect(await res.json()).toMatchObject({ status: 503, error: 'ERR_BFF_SHUTTING_DOWN' });
    }
    const slow = await slowDone;
    expect(slow.status, slow.body).toBe(200);
    expect(await closing).toBe(servedBefore + 1);
    // Paths that are not the BFF's keep working for the host (health checks during the drain).
    expect((await fetch(`${bff.url}/health`)).status).toBe(200);
    upstream.state.delayMs = 0;
    await bff.close();
  });

  it('an in-flight background refresh completes and stores its tokens before close() resolves; a store passed in is not closed', async () => {
    const inner = createMemoryStore();
    let closedStore = 0;
    const store: SessionStore = {
      ...inner,
      close: async () => {
        closedStore++;
        await inner.close?.();
      },
    };
    const { bff, clock } = await host(store);
    const cookie = await signInCookie(bff.url);
    const id = decodeURIComponent(cookie).slice(2).split('.')[0]!;
    const tokensBefore = (await inner.get(id))?.tokens;
    expect(tokensBefore).toBeDefined();
    clock.advance(250); // inside the refresh margin, still valid
    const before = front.refreshes.length;
    front.fault = { kind: 'delay', ms: 700 };
    expect((await fetch(`${bff.url}/api/todos`, { headers: headers(cookie) })).status).toBe(200);
    const started = Date.now();
    await bff.app.bff.close({ timeout: 5 });
    front.fault = { kind: 'pass' };
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    expect(front.refreshes.length - before).toBe(1);
    const tokensAfter = (await inner.get(id))?.tokens;
    expect(tokensAfter).toBeDefined();
    expect(tokensAfter).not.toBe(tokensBefore);
    expect(closedStore).toBe(0);
    await bff.close();
    await inner.close?.();
  });

  it('close() is bounded by its timeout when a call hangs, and is idempotent', async () => {
    const { bff } = await host();
    const cookie = await signInCookie(bff.url);
    upstream.state.delayMs = -1;
    const hung = fetch(`${bff.url}/api/todos`, { headers: headers(cookie) }).then(
      (r) => r.status,
      () => 0,
    );
    await sleep(150);
    const started = Date.now();
    const first = bff.app.bff.close({ timeout: 1 });
    const second = bff.app.bff.close({ timeout: 1 });
    await Promise.all([first, second]);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(2500);
    upstream.state.delayMs = 0;
    await bff.close();
    // The hung call is cut (its agent closed) rather than left dangling.
    expect([0, 502, 504]).toContain(await hung);
  });

  it('close() refuses a bad timeout with a TypeError that says the fix', async () => {
    const { bff } = await host();
    await expect(bff.app.bff.close({ timeout: -1 })).rejects.toThrow(TypeError);
    await expect(bff.app.bff.close({ timeout: Number.NaN })).rejects.toThrow(/timeout.*seconds/);
    await bff.close();
  });
});

describe('sample host (apps/bff): SIGTERM and SIGINT drain, then exit', () => {
  const fronts: IdpFront[] = [];
  const redisPrefix = uniqueRedisPrefix('bff-shutdown');
  let upstream: Awaited<ReturnType<typeof startSlowUpstream>>;
  let child: ChildProcess | undefined;
  beforeAll(async () => {
    upstream = await startSlowUpstream();
  });
  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await upstream?.close();
    for (const front of fronts) await front.close();
    if (redisReady) {
      const redis = await connectTestRedis();
      await deleteRedisPrefix(redis, redisPrefix);
      await redis.close();
    }
  });

  // SIGINT is Ctrl+C under `npm start`; the Redis case drains with sessions in Redis, whose client the
  // host closes after bff.close().
  it.each([
    { signal: 'SIGTERM' as const, store: 'memory' },
    { signal: 'SIGINT' as const, store: 'redis' },
  ])(
    '$signal ($store sessions): an in-flight call completes 200, then the process exits 0 within its timeout and takes no new connections',
    async ({ signal, store }) => {
      if (store === 'redis' && !redisReady) return;
      const port = await getFreePort();
      const front = await startIdpFront({ bffBaseUrl: `http://localhost:${port}` });
      fronts.push(front);
      const url = `http://localhost:${port}`;
      child = spawn(
        process.execPath,
        ['--conditions=@gatehouse/source', '--import', 'tsx', 'src/server.ts'],
        {
          cwd: resolve(root, 'apps/bff'),
          env: {
            ...process.env,
            BFF_PORT: String(port),
            BFF_HOST: '127.0.0.1',
            BFF_BASE_URL: url,
            ISSUER: front.issuer,
            API_URL: upstream.url,
            SESSION_SECRET,
            LOG_LEVEL: 'warn',
            SHUTDOWN_TIMEOUT: '5',
            REDIS_URL: store === 'redis' ? (process.env.REDIS_URL ?? 'redis://127.0.0.1:6379') : '',
            REDIS_PREFIX: redisPrefix,
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let output = '';
      child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
      const exited = new Promise<number | null>((r) => child?.once('exit', (code) => r(code)));
      // Wait until it listens.
      const deadline = Date.now() + 20_000;
      for (;;) {
        try {
          if ((await fetch(`${url}/health`)).ok) break;
        } catch {}
        if (Date.now() > deadline) throw new Error(`sample host did not start: ${output}`);
        await sleep(100);
      }
      const cookie = await signInCookie(url);
      upstream.state.delayMs = 1000;
      const slow = fetch(`${url}/api/todos`, { headers: headers(cookie) }).then((r) => r.status);
      await sleep(200);
      const signalled = Date.now();
      child.kill(signal);
      expect(await slow).toBe(200);
      expect(await exited).toBe(0);
      expect(Date.now() - signalled).toBeLessThan(6500); // SHUTDOWN_TIMEOUT (5 s) bounds the drain
      upstream.state.delayMs = 0;
      // Gone: no new connections.
      await expect(fetch(`${url}/health`)).rejects.toThrow();
    },
    40_000,
  );
});
