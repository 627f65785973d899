// Failure audit against the real sample IdP, reached through a loopback fault front that forwards
// to it and injects what the IdP cannot do on demand (hangs, resets, 5xx/429, HTML error pages).
import { generateKeyPairSync } from 'node:crypto';
import { inspect } from 'node:util';
import {
  connectTestRedis,
  deleteRedisPrefix,
  type RunningIdp,
  requireRedis,
  startIdp,
  uniqueRedisPrefix,
} from '@gatehouse/testing';
import type { RedisClientType } from 'redis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createTokenManager,
  type PrivateJwk,
  type TokenClientOptions,
  TokenManagerError,
  type TokenManagerOptions,
} from '../src/index.js';
import { captureLogger, type FaultFront, type FrontFault, fakeClock, startFaultFront } from './helpers.js';

const SECRET = 'worker-secret';
const CACHE_SECRET = 'a-test-secret-of-at-least-32-characters!';
let idp: RunningIdp;
let front: FaultFront;

beforeAll(async () => {
  idp = await startIdp({ accessTokenTtl: 120 });
  front = await startFaultFront(idp.issuer);
});
afterAll(async () => {
  await front?.close();
  await idp?.close();
});
beforeEach(() => {
  front.requests.length = 0;
  front.fault = () => 'pass';
});

/** The `worker` client, its token endpoint behind the fault front. */
function viaFront(extra: Partial<TokenClientOptions> = {}): TokenClientOptions {
  return {
    tokenEndpoint: `${front.url}/token`,
    clientId: 'worker',
    clientSecret: SECRET,
    scope: 'api.reports',
    ...extra,
  };
}

function manager(extra: Partial<TokenManagerOptions> = {}) {
  return createTokenManager({
    clients: { reports: viaFront() },
    retry: { attempts: 2, baseDelay: 0.01, cooldown: 0 },
    timeout: 0.5,
    failureBackoff: 0,
    ...extra,
  });
}

const html = (status: number): FrontFault => ({
  status,
  headers: { 'content-type': 'text/html' },
  body: `<html><body><h1>${status}</h1>upstream says no</body></html>`,
});

describe('R5a/T6: every transient token-endpoint failure is classified by cause', () => {
  const transient: Array<[string, FrontFault]> = [
    ['a hang (no answer within the timeout)', 'hang'],
    ['headers, half a body, then a hang', 'hang-body'],
    ['a connection reset before the answer', 'reset'],
    ['a connection reset in the middle of the body', 'reset-body'],
    ['a 502 HTML page from a proxy', html(502)],
    ['a 503 plain-text page', { status: 503, headers: { 'content-type': 'text/plain' }, body: 'down' }],
    [
      'a 500 with an OAuth server_error body',
      { status: 500, headers: { 'content-type': 'application/json' }, body: '{"error":"server_error"}' },
    ],
    ['a 429 as text', { status: 429, body: 'slow down' }],
    [
      'a 429 as JSON',
      { status: 429, headers: { 'content-type': 'application/json' }, body: '{"error":"slow_down"}' },
    ],
    ['a 404 HTML page from a load balancer', html(404)],
    ['a 403 HTML page from a WAF', html(403)],
    ['a 200 HTML maintenance page', html(200)],
    [
      'a 400 temporarily_unavailable',
      {
        status: 400,
        headers: { 'content-type': 'application/json' },
        body: '{"error":"temporarily_unavailable"}',
      },
    ],
  ];

  it.each(transient)(
    'R5a/T6: %s → retried, ERR_TOKEN_ENDPOINT_UNAVAILABLE; the healed IdP then issues a token',
    async (_label, fault) => {
      front.fault = () => fault;
      const tokens = manager();
      const error = await tokens.getAccessToken('reports').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TokenManagerError);
      expect(error).toMatchObject({
        code: 'ERR_TOKEN_ENDPOINT_UNAVAILABLE',
        status: 503,
        retryable: true,
        attempts: 2,
      });
      // Two attempts, both reached the front: retried, not given up on after one.
      expect(front.requests).toHaveLength(2);
      // No upstream body text ever reaches the message.
      expect((error as Error).message).not.toMatch(/upstream says no|down|slow/);
      front.fault = () => 'pass';
      const before = idp.counters.token();
      await expect(tokens.getAccessToken('reports')).resolves.toMatchObject({
        source: 'idp',
        tokenType: 'Bearer',
      });
      expect(idp.counters.token() - before).toBe(1);
    },
  );

  it('T6: a DNS failure (a .invalid host never resolves) is transient too', async () => {
    const tokens = createTokenManager({
      clients: { reports: { ...viaFront(), tokenEndpoint: 'https://gatehouse-token-manager.invalid/token' } },
      retry: { attempts: 2, baseDelay: 0.01 },
      timeout: 2,
    });
    await expect(tokens.getAccessToken('reports')).rejects.toMatchObject({
      code: 'ERR_TOKEN_ENDPOINT_UNAVAILABLE',
      retryable: true,
      attempts: 2,
    });
  });

  it('T6: the real IdP rejecting the credentials (invalid_client) is final: one request, no retry', async () => {
    front.fault = () => 'mangle-auth';
    const tokens = manager({ retry: { attempts: 3, baseDelay: 0.01 } });
    await expect(tokens.getAccessToken('reports')).rejects.toMatchObject({
      code: 'ERR_TOKEN_INVALID_CLIENT',
      oauthError: 'invalid_client',
      retryable: false,
    });
    expect(front.requests).toHaveLength(1);
  });
});

describe('T6: a failed renewal serves the cached token until it expires', () => {
  const faults: Array<[string, FrontFault]> = [
    ['hangs', 'hang'],
    ['resets', 'reset'],
    ['answers 503', { status: 503, body: 'down' }],
    ['answers an HTML page', html(502)],
    ['rejects the client (invalid_client)', 'mangle-auth'],
  ];

  it.each(faults)(
    'T6: the IdP %s: stale token served with an event and a log line, then the error',
    async (_label, fault) => {
      const clock = fakeClock();
      const logger = captureLogger();
      const tokens = manager({ clock: clock.now, logger });
      const stale: Array<{ client: string; expiresIn: number; code: string }> = [];
      tokens.on('token.stale-served', (event) => stale.push(event));

      const first = await tokens.getAccessToken('reports'); // real token, expires_in 120 → renew at 60 s
      clock.advance(90);
      front.fault = () => fault;
      const served = await tokens.getAccessToken('reports');
      expect(served).toMatchObject({ accessToken: first.accessToken, stale: true, fromCache: true });
      expect(stale).toHaveLength(1);
      expect(stale[0]).toMatchObject({ client: 'reports', expiresIn: 30 });
      expect(stale[0]!.code).toMatch(/^ERR_TOKEN_(ENDPOINT_UNAVAILABLE|INVALID_CLIENT)$/);
      expect(logger.lines.some((l) => l.includes('serving the cached token'))).toBe(true);
      expect(logger.lines.join('\n')).not.toContain(first.accessToken);

      // Expired: now the failure surfaces.
      clock.advance(31);
      const error = await tokens.getAccessToken('reports').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TokenManagerError);
      expect((error as TokenManagerError).code).toBe(stale[0]!.code);

      // The IdP is back: a new token.
      front.fault = () => 'pass';
      const renewed = await tokens.getAccessToken('reports');
      expect(renewed).toMatchObject({ source: 'idp', stale: false });
      expect(renewed.accessToken).not.toBe(first.accessToken);
    },
  );
});

describe('T6 R7: renewAhead keeps callers off a slow IdP while the cached token is valid', () => {
  it('T6 R7: inside the margin with the IdP hanging, calls get the cached token at once; one renewal runs behind them and reports the failure', async () => {
    const clock = fakeClock();
    const logger = captureLogger();
    front.fault = () => 'pass';
    // A 2 s request timeout: the first real token request may be slow on a busy machine.
    const tokens = manager({ clock: clock.now, logger, renewAhead: true, timeout: 2 });
    const stale: Array<{ code: string }> = [];
    tokens.on('token.stale-served', (event) => stale.push(event));

    const first = await tokens.getAccessToken('reports'); // expires_in 120 → renew from 60 s
    clock.advance(90);
    front.fault = () => 'hang';
    const before = front.requests.length;
    const started = performance.now();
    const served = await Promise.all([1, 2, 3].map(() => tokens.getAccessToken('reports')));
    expect(performance.now() - started).toBeLessThan(500); // no wait for the hanging IdP (timeout 2 s)
    for (const token of served)
      expect(token).toMatchObject({ accessToken: first.accessToken, fromCache: true });
    // Single-flight: one renewal behind the three callers; it fails after its attempts and says so.
    await expect.poll(() => stale.length, { timeout: 10_000 }).toBe(1);
    expect(front.requests.length - before).toBe(2); // retry.attempts: 2
    expect(stale[0]!.code).toBe('ERR_TOKEN_ENDPOINT_UNAVAILABLE');

    // The IdP is back: the next call still gets the cached token and renews behind it.
    front.fault = () => 'pass';
    await tokens.getAccessToken('reports');
    await expect
      .poll(async () => (await tokens.getAccessToken('reports')).accessToken, { timeout: 10_000 })
      .not.toBe(first.accessToken);

    // Within the last half second of a token's life a caller waits for the renewal instead.
    clock.advance(119.7);
    front.fault = () => 'pass';
    const fresh = await tokens.getAccessToken('reports');
    expect(fresh.fromCache).toBe(false);
  });

  it('renewAhead must be a boolean', () => {
    expect(() => manager({ renewAhead: 'yes' as never })).toThrow(/renewAhead must be true or false/);
  });
});

describe('T4: the cache key includes the client credentials', () => {
  it('T4: two clients with the same client_id but different secrets never share a cached token', async () => {
    const tokens = createTokenManager({
      clients: {
        good: { issuer: idp.issuer, clientId: 'worker', clientSecret: SECRET, scope: 'api.reports' },
        bad: { issuer: idp.issuer, clientId: 'worker', clientSecret: 'not-the-secret', scope: 'api.reports' },
      },
      failureBackoff: 0,
    });
    await expect(tokens.getAccessToken('good')).resolves.toMatchObject({ source: 'idp' });
    await expect(tokens.getAccessToken('bad')).rejects.toMatchObject({ code: 'ERR_TOKEN_INVALID_CLIENT' });
  });

  it('T4: same client_id, secret vs post: the auth method is part of the key', async () => {
    const tokens = createTokenManager({
      clients: {
        basic: { issuer: idp.issuer, clientId: 'worker', clientSecret: SECRET, scope: 'api.reports' },
        post: {
          issuer: idp.issuer,
          clientId: 'worker',
          clientSecret: SECRET,
          clientAuthentication: 'client_secret_post',
          scope: 'api.reports',
        },
      },
    });
    const a = await tokens.getAccessToken('basic');
    const b = await tokens.getAccessToken('post');
    expect(b.source).toBe('idp');
    expect(b.accessToken).not.toBe(a.accessToken);
  });

  it('T4: private_key_jwt: a different key (same client_id) never gets the registered key’s token', async () => {
    const other = {
      ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }),
      kid: (idp.workerPrivateJwk as { kid?: string }).kid,
    } as PrivateJwk;
    const tokens = createTokenManager({
      clients: {
        registered: {
          issuer: idp.issuer,
          clientId: 'worker-jwt',
          privateKey: idp.workerPrivateJwk as PrivateJwk,
          scope: 'api.reports',
        },
        unregistered: { issuer: idp.issuer, clientId: 'worker-jwt', privateKey: other, scope: 'api.reports' },
      },
      failureBackoff: 0,
    });
    await expect(tokens.getAccessToken('registered')).resolves.toMatchObject({ source: 'idp' });
    await expect(tokens.getAccessToken('unregistered')).rejects.toMatchObject({
      code: 'ERR_TOKEN_INVALID_CLIENT',
    });
  });
});

const redisReady = await requireRedis('token-manager credential-keyed shared cache');

describe.skipIf(!redisReady)('T4: the shared (Redis) cache key includes the client credentials', () => {
  let redis: RedisClientType;
  const prefix = uniqueRedisPrefix('token-manager-creds');
  beforeAll(async () => {
    redis = await connectTestRedis();
  });
  afterAll(async () => {
    if (redis) {
      await deleteRedisPrefix(redis, prefix);
      await redis.close();
    }
  });

  function shared(client: TokenClientOptions, logger = captureLogger()) {
    return createTokenManager({
      clients: { reports: client },
      sharedCache: { redis, keyPrefix: prefix, encryptionSecret: CACHE_SECRET, commandTimeout: 2 },
      failureBackoff: 0,
      logger,
    });
  }

  it('T4: a process with a wrong secret never reads the token another process got with the right one', async () => {
    const right = shared({
      issuer: idp.issuer,
      clientId: 'worker',
      clientSecret: SECRET,
      scope: 'api.reports',
    });
    const wrong = shared({
      issuer: idp.issuer,
      clientId: 'worker',
      clientSecret: 'wrong-secret',
      scope: 'api.reports',
    });
    const good = await right.getAccessToken('reports');
    expect(good.source).toBe('idp');
    const error = await wrong.getAccessToken('reports').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_TOKEN_INVALID_CLIENT' });
    expect(inspect(error, { depth: 8 })).not.toContain(good.accessToken);
    // And a second process with the right secret still shares the first one's token.
    const again = shared({
      issuer: idp.issuer,
      clientId: 'worker',
      clientSecret: SECRET,
      scope: 'api.reports',
    });
    await expect(again.getAccessToken('reports')).resolves.toMatchObject({
      accessToken: good.accessToken,
      source: 'shared',
    });
  });

  it('T4/T1: Redis key names are keyed by the cache secret (no plain hash of the client secret to guess offline)', async () => {
    const logger = captureLogger();
    const m = shared(
      {
        issuer: idp.issuer,
        clientId: 'worker',
        clientSecret: SECRET,
        scope: 'api.reports',
        resource: 'urn:gatehouse:sample-api',
      },
      logger,
    );
    await m.getAccessToken('reports');
    const keys: string[] = [];
    for await (const batch of redis.scanIterator({ MATCH: `${prefix}token:*` })) keys.push(...batch);
    expect(keys.length).toBeGreaterThan(0);
    // The key is keyed (HMAC with a key derived from the cache secret), so the same configuration
    // under another cache secret lands on another key name.
    const otherPrefixKeysBefore = keys.length;
    const other = createTokenManager({
      clients: {
        reports: {
          issuer: idp.issuer,
          clientId: 'worker',
          clientSecret: SECRET,
          scope: 'api.reports',
          resource: 'urn:gatehouse:sample-api',
        },
      },
      sharedCache: { redis, keyPrefix: prefix, encryptionSecret: `${CACHE_SECRET}-other`, commandTimeout: 2 },
    });
    await expect(other.getAccessToken('reports')).resolves.toMatchObject({ source: 'idp' });
    const after: string[] = [];
    for await (const batch of redis.scanIterator({ MATCH: `${prefix}token:*` })) after.push(...batch);
    expect(new Set(after).size).toBe(otherPrefixKeysBefore + 1);
  });
});
