// The sample worker in-process against the real sample IdP and sample API (and real Redis).
import { Writable } from 'node:stream';
import {
  connectTestRedis,
  deleteRedisPrefix,
  type RunningApi,
  type RunningIdp,
  requireRedis,
  startApi,
  startIdp,
  uniqueRedisPrefix,
} from '@gatehouse/testing';
import { pino } from 'pino';
import type { RedisClientType } from 'redis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createWorker, type WorkerConfig } from '../src/app.js';

let idp: RunningIdp;
let api: RunningApi;

beforeAll(async () => {
  idp = await startIdp({ accessTokenTtl: 120 });
  api = await startApi({ issuer: idp.issuer });
});
afterAll(async () => {
  await api?.close();
  await idp?.close();
});

/** A pino logger whose lines the test can read. */
function captured(): {
  logger: WorkerConfig['logger'];
  lines: () => Array<Record<string, unknown>>;
  raw: string[];
} {
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      raw.push(String(chunk));
      done();
    },
  });
  return {
    logger: pino({ level: 'debug' }, stream),
    raw,
    lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

function config(extra: Partial<WorkerConfig> = {}): WorkerConfig & { capture: ReturnType<typeof captured> } {
  const capture = captured();
  return {
    issuer: idp.issuer,
    apiUrl: api.url,
    clientId: 'worker',
    clientSecret: 'worker-secret',
    interval: 0.05,
    logger: capture.logger,
    capture,
    ...extra,
  };
}

describe('sample worker', () => {
  it('calls /api/reports with a client token: 200, renewed then from cache, one line per call', async () => {
    const cfg = config();
    const worker = createWorker(cfg);
    await expect(worker.runOnce()).resolves.toEqual({ status: 200, token: 'renewed', tokenType: 'Bearer' });
    await expect(worker.runOnce()).resolves.toEqual({ status: 200, token: 'cache', tokenType: 'Bearer' });
    const calls = cfg.capture.lines().filter((l) => l.msg === 'GET /api/reports');
    expect(calls).toHaveLength(2);
    expect(calls[0]).toMatchObject({ level: 30, status: 200, token: 'renewed' });
    expect(calls[1]).toMatchObject({ status: 200, token: 'cache' });
    await worker.stop();
  });

  it('T1: runs on its interval and stops cleanly: no call after stop(), no token or secret in any line', async () => {
    let apiCalls = 0;
    const counting: typeof fetch = (input, init) => {
      if (String(input).includes('/api/reports')) apiCalls++;
      return fetch(input, init);
    };
    const cfg = config({ fetch: counting });
    const worker = createWorker(cfg);
    const { accessToken } = await worker.tokens.getAccessToken('sample-api');
    worker.start();
    await new Promise((resolve) => setTimeout(resolve, 400));
    await worker.stop();
    const afterStop = apiCalls;
    expect(afterStop).toBeGreaterThanOrEqual(2);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(apiCalls).toBe(afterStop);
    expect(cfg.capture.lines().at(-1)).toMatchObject({ msg: 'worker stopped' });
    const all = cfg.capture.raw.join('');
    expect(all).toContain('"status":200');
    expect(all).not.toContain(accessToken);
    expect(all).not.toContain('worker-secret');
  });

  it('T4: with a short ACCESS_TOKEN_TTL the token is renewed at half the lifetime, behind the calls (renewAhead)', async () => {
    const shortIdp = await startIdp({ accessTokenTtl: 4 });
    const shortApi = await startApi({ issuer: shortIdp.issuer });
    try {
      const cfg = config({ issuer: shortIdp.issuer, apiUrl: shortApi.url });
      const worker = createWorker(cfg);
      const renewals = () => cfg.capture.raw.join('').split('token-manager: token renewed').length - 1;
      const first = await worker.runOnce();
      const second = await worker.runOnce();
      expect([first, second]).toEqual([
        { status: 200, token: 'renewed', tokenType: 'Bearer' },
        { status: 200, token: 'cache', tokenType: 'Bearer' },
      ]);
      expect(renewals()).toBe(1);
      // Past half the lifetime: the call goes on with the still-valid token, one renewal runs behind it.
      await new Promise((resolve) => setTimeout(resolve, 2100));
      const third = await worker.runOnce();
      expect(third.status).toBe(200);
      const deadline = Date.now() + 2000;
      while (renewals() < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(renewals()).toBe(2);
      // The next call is the first with the renewed token (labelled so), then it serves from the cache.
      await expect(worker.runOnce()).resolves.toEqual({ status: 200, token: 'renewed', tokenType: 'Bearer' });
      await expect(worker.runOnce()).resolves.toEqual({ status: 200, token: 'cache', tokenType: 'Bearer' });
      expect(renewals()).toBe(2);
      await worker.stop();
    } finally {
      await shortApi.close();
      await shortIdp.close();
    }
  });

  it('a wrong secret gives an error line with the code, not a crash', async () => {
    const cfg = config({ clientSecret: 'wrong-secret' });
    const worker = createWorker(cfg);
    await expect(worker.runOnce()).resolves.toEqual({
      status: 0,
      token: 'none',
      error: 'ERR_TOKEN_INVALID_CLIENT',
    });
    expect(cfg.capture.raw.join('')).not.toContain('wrong-secret');
    await worker.stop();
  });

  it('private_key_jwt (client worker-jwt) works too', async () => {
    const worker = createWorker(
      config({ clientId: 'worker-jwt', clientSecret: undefined, privateKey: idp.workerPrivateJwk as never }),
    );
    await expect(worker.runOnce()).resolves.toEqual({ status: 200, token: 'renewed', tokenType: 'Bearer' });
    await worker.stop();
  });

  it('T9: with dpop it calls the DPoP-only sample API (server nonces on) and logs the token type and key thumbprint', async () => {
    const dpopApi = await startApi({ issuer: idp.issuer, requireDPoP: true, dpopNonce: true });
    try {
      const cfg = config({ apiUrl: dpopApi.url, dpop: true });
      const worker = createWorker(cfg);
      worker.start();
      await vi.waitFor(() =>
        expect(cfg.capture.lines().filter((l) => l.msg === 'GET /api/reports').length).toBeGreaterThanOrEqual(
          2,
        ),
      );
      const { accessToken } = await worker.tokens.getAccessToken('sample-api');
      await worker.stop();
      const lines = cfg.capture.lines();
      const started = lines.find((l) => l.msg === 'worker started');
      const claims = JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString()) as {
        cnf?: { jkt?: string };
      };
      expect(started).toMatchObject({ tokenType: 'DPoP', dpopJkt: claims.cnf?.jkt });
      expect(typeof started?.dpopJkt).toBe('string');
      const calls = lines.filter((l) => l.msg === 'GET /api/reports');
      expect(calls[0]).toMatchObject({ status: 200, token: 'renewed', tokenType: 'DPoP' });
      expect(calls[1]).toMatchObject({ status: 200, token: 'cache', tokenType: 'DPoP' });
      const all = cfg.capture.raw.join('');
      expect(all).not.toContain(accessToken);
      expect(all).not.toMatch(/"d":"/);
    } finally {
      await dpopApi.close();
    }
  });

  it('T9: the same DPoP-only API refuses the Bearer worker (401), so DPoP is what makes it work', async () => {
    const dpopApi = await startApi({ issuer: idp.issuer, requireDPoP: true });
    try {
      const worker = createWorker(config({ apiUrl: dpopApi.url }));
      await expect(worker.runOnce()).resolves.toMatchObject({ status: 401, tokenType: 'Bearer' });
      await worker.stop();
    } finally {
      await dpopApi.close();
    }
  });
});

const redisReady = await requireRedis('sample worker shared cache');
describe.skipIf(!redisReady)('two workers on one Redis', () => {
  const prefix = uniqueRedisPrefix('worker');
  let redis: RedisClientType;
  beforeAll(async () => {
    redis = await connectTestRedis();
  });
  afterAll(async () => {
    await deleteRedisPrefix(redis, prefix);
    await redis?.close();
  });

  it("T5: the second worker uses the first one's token from Redis", async () => {
    const shared = { redis, cacheSecret: 'a-test-secret-of-at-least-32-characters!', cacheKeyPrefix: prefix };
    const first = createWorker(config(shared));
    const second = createWorker(config(shared));
    const before = idp.counters.token();
    await expect(first.runOnce()).resolves.toMatchObject({ status: 200, token: 'renewed' });
    await expect(second.runOnce()).resolves.toMatchObject({ status: 200, token: 'shared' });
    expect(idp.counters.token() - before).toBe(1);
    await Promise.all([first.stop(), second.stop()]);
  });
});
