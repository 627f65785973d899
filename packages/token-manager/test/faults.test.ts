// Faults the real IdP cannot produce on demand, against a fake token endpoint on 127.0.0.1.
import { generateKeyPairSync } from 'node:crypto';
import { inspect } from 'node:util';
import { getFreePort } from '@gatehouse/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createTokenManager,
  type PrivateJwk,
  TokenManagerError,
  type TokenManagerOptions,
} from '../src/index.js';
import {
  captureLogger,
  type FakeReply,
  type FakeServer,
  fakeClock,
  startFakeServer,
  tokenResponse,
} from './helpers.js';

let as: FakeServer;
beforeAll(async () => {
  as = await startFakeServer();
});
afterAll(async () => {
  await as?.close();
});
beforeEach(() => {
  as.requests.length = 0;
});

/** A manager for one client `c` at the fake token endpoint, with fast retries. */
function manager(extra: Partial<TokenManagerOptions> = {}, client: Record<string, unknown> = {}) {
  return createTokenManager({
    clients: {
      c: { tokenEndpoint: `${as.url}/token`, clientId: 'c1', clientSecret: 's1', scope: 'read', ...client },
    },
    retry: { attempts: 3, baseDelay: 0.01, maxDelay: 2 },
    timeout: 2,
    ...extra,
  });
}

describe('token endpoint faults', () => {
  it('T6: 503 on every attempt → bounded retries (3 requests), then a typed retryable error', async () => {
    as.reply = () => ({ status: 503, text: 'down' });
    const error = await manager()
      .getAccessToken('c')
      .catch((e: unknown) => e);
    expect(as.requests).toHaveLength(3);
    expect(error).toMatchObject({
      code: 'ERR_TOKEN_ENDPOINT_UNAVAILABLE',
      status: 503,
      upstreamStatus: 503,
      retryable: true,
      attempts: 3,
    });
  });

  it('T6: 503, 503, then 200 → the third attempt succeeds', async () => {
    as.reply = (_r, n) =>
      n < 3 ? { status: 503, json: { error: 'temporarily_unavailable' } } : tokenResponse('t-ok');
    const token = await manager().getAccessToken('c');
    expect(token.accessToken).toBe('t-ok');
    expect(as.requests).toHaveLength(3);
  });

  it('T6: a token endpoint that hangs times out, is retried a bounded number of times', async () => {
    as.reply = () => 'hang';
    const started = performance.now();
    const error = await manager({ timeout: 0.2, retry: { attempts: 2, baseDelay: 0.01 } })
      .getAccessToken('c')
      .catch((e: unknown) => e);
    expect(as.requests).toHaveLength(2);
    expect(error).toMatchObject({ code: 'ERR_TOKEN_ENDPOINT_UNAVAILABLE', retryable: true });
    expect(performance.now() - started).toBeLessThan(3000);
  });

  it('T6: connection refused is retried, then a typed error', async () => {
    const port = await getFreePort();
    const tokens = createTokenManager({
      clients: { c: { tokenEndpoint: `http://127.0.0.1:${port}/token`, clientId: 'c1', clientSecret: 's1' } },
      retry: { attempts: 2, baseDelay: 0.01 },
    });
    await expect(tokens.getAccessToken('c')).rejects.toMatchObject({
      code: 'ERR_TOKEN_ENDPOINT_UNAVAILABLE',
      attempts: 2,
    });
  });

  it('T6: while the IdP is down a still-valid cached token keeps being served, with bounded requests', async () => {
    const clock = fakeClock();
    as.reply = (_r, n) =>
      n === 1 ? tokenResponse('t-1', { expires_in: 120 }) : { status: 503, text: 'down' };
    const tokens = manager({ clock: clock.now, retry: { attempts: 3, baseDelay: 0.01, cooldown: 5 } });
    await tokens.getAccessToken('c');
    clock.advance(100); // past the renewal point (60 s), before expiry (120 s)
    const served = await tokens.getAccessToken('c');
    expect(served).toMatchObject({ accessToken: 't-1', stale: true, fromCache: true });
    expect(as.requests).toHaveLength(1 + 3);
    // A hot loop inside the cooldown makes no request and still gets the token.
    for (let i = 0; i < 20; i++) expect((await tokens.getAccessToken('c')).accessToken).toBe('t-1');
    expect(as.requests).toHaveLength(4);
    clock.advance(6);
    await tokens.getAccessToken('c');
    expect(as.requests).toHaveLength(7);
    // Once the token has expired, the failure surfaces.
    clock.advance(20);
    await expect(tokens.getAccessToken('c')).rejects.toMatchObject({
      code: 'ERR_TOKEN_ENDPOINT_UNAVAILABLE',
    });
  });

  it('T6: 429 with Retry-After: 1 → the retry waits at least 1 s', async () => {
    const at: number[] = [];
    as.reply = (_r, n) => {
      at.push(performance.now());
      return n === 1
        ? { status: 429, headers: { 'retry-after': '1' }, text: 'slow down' }
        : tokenResponse('t-after');
    };
    const token = await manager().getAccessToken('c');
    expect(token.accessToken).toBe('t-after');
    expect(at).toHaveLength(2);
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(950);
  });

  it('T6: 429 with Retry-After: 5 → no request for 5 s, then requests again', async () => {
    const clock = fakeClock();
    as.reply = (_r, n) =>
      n === 1
        ? { status: 429, headers: { 'retry-after': '5' }, json: { error: 'slow_down' } }
        : tokenResponse('t-5');
    const tokens = manager({ clock: clock.now });
    await expect(tokens.getAccessToken('c')).rejects.toMatchObject({
      code: 'ERR_TOKEN_ENDPOINT_UNAVAILABLE',
      retryAfter: 5,
    });
    expect(as.requests).toHaveLength(1);
    clock.advance(4.5);
    await expect(tokens.getAccessToken('c')).rejects.toMatchObject({ retryAfter: 5 });
    expect(as.requests).toHaveLength(1);
    clock.advance(1);
    await expect(tokens.getAccessToken('c')).resolves.toMatchObject({ accessToken: 't-5' });
    expect(as.requests).toHaveLength(2);
  });

  it('T3: client_secret_basic form-urlencodes id and secret before Base64 (secret a:b%+c)', async () => {
    const clientId = 'my client:1';
    const secret = 'a:b%+c';
    // A spec-conformant AS (RFC 6749 §2.3.1): split on the first ':', then form-urldecode each part.
    as.reply = (request) => {
      const decoded = Buffer.from(
        String(request.headers.authorization).replace(/^Basic /, ''),
        'base64',
      ).toString();
      const colon = decoded.indexOf(':');
      const formDecode = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
      const ok =
        formDecode(decoded.slice(0, colon)) === clientId && formDecode(decoded.slice(colon + 1)) === secret;
      return ok ? tokenResponse('t-basic') : { status: 401, json: { error: 'invalid_client' } };
    };
    const tokens = manager({}, { clientId, clientSecret: secret });
    await expect(tokens.getAccessToken('c')).resolves.toMatchObject({ accessToken: 't-basic' });
    expect(as.requests[0]!.headers.authorization).toBe(
      `Basic ${Buffer.from('my+client%3A1:a%3Ab%25%2Bc').toString('base64')}`,
    );
    expect(as.requests[0]!.form.get('grant_type')).toBe('client_credentials');
    expect(as.requests[0]!.form.get('client_secret')).toBeNull();
  });

  it('T1: a refresh_token in the response is dropped: never returned, logged or emitted', async () => {
    const logger = captureLogger();
    const seen: string[] = [];
    as.reply = () => tokenResponse('t-rt', { refresh_token: 'RT-must-not-be-kept', scope: 'read' });
    const tokens = manager({ logger });
    tokens.on('token.renewed', (p) => seen.push(JSON.stringify(p)));
    const token = await tokens.getAccessToken('c');
    expect(token.accessToken).toBe('t-rt');
    expect(Object.keys(token).sort()).toEqual([
      'accessToken',
      'expiresAt',
      'fromCache',
      'scope',
      'source',
      'stale',
      'tokenType',
    ]);
    expect(JSON.stringify([token, seen, logger.lines])).not.toContain('RT-must-not-be-kept');
  });

  it('T7: a granted scope that does not cover the request → typed error, nothing cached', async () => {
    as.reply = () => tokenResponse('t-narrow', { scope: 'read' });
    const tokens = manager({ failureBackoff: 0 }, { scope: 'read write' });
    await expect(tokens.getAccessToken('c')).rejects.toMatchObject({
      code: 'ERR_TOKEN_SCOPE_NOT_GRANTED',
      retryable: false,
    });
    // Nothing was cached: the next call asks again (and fails again).
    await expect(tokens.getAccessToken('c')).rejects.toMatchObject({ code: 'ERR_TOKEN_SCOPE_NOT_GRANTED' });
    expect(as.requests).toHaveLength(2);
    // An absent `scope` means "as requested" (RFC 6749 §5.1); a wider one is fine.
    as.reply = (_r, n) =>
      n === 3 ? tokenResponse('t-same') : tokenResponse('t-wide', { scope: 'write admin read' });
    await expect(tokens.getAccessToken('c')).resolves.toMatchObject({
      accessToken: 't-same',
      scope: 'read write',
    });
    await expect(tokens.getAccessToken('c', { scope: 'write' })).resolves.toMatchObject({
      accessToken: 't-wide',
    });
  });

  it('T4: a response without expires_in gets the short default lifetime', async () => {
    const clock = fakeClock();
    as.reply = (_r, n) => ({ status: 200, json: { access_token: `t-${n}`, token_type: 'bearer' } });
    const tokens = manager({ clock: clock.now, defaultExpiresIn: 60 });
    const first = await tokens.getAccessToken('c');
    expect(first.expiresAt.getTime()).toBe(clock.now() + 60_000);
    clock.advance(29); // margin min(60, 60/2) = 30
    expect((await tokens.getAccessToken('c')).accessToken).toBe('t-1');
    clock.advance(2);
    expect((await tokens.getAccessToken('c')).accessToken).toBe('t-2');
  });

  it("T4: a token for resource B is never served from resource A's cache entry", async () => {
    as.reply = (request) => tokenResponse(`t-for-${request.form.getAll('resource').join(',')}`);
    const tokens = manager();
    const a = await tokens.getAccessToken('c', { resource: 'https://a.example/' });
    const b = await tokens.getAccessToken('c', { resource: 'https://b.example/' });
    expect(a.accessToken).toBe('t-for-https://a.example/');
    expect(b.accessToken).toBe('t-for-https://b.example/');
    expect((await tokens.getAccessToken('c', { resource: 'https://a.example/' })).accessToken).toBe(
      a.accessToken,
    );
    expect(as.requests).toHaveLength(2);
  });

  it('T1: no secret or token in any log line, event or error on the failure paths', async () => {
    const secret = 'Sup3r:secret%+value';
    const logger = captureLogger();
    const seen: string[] = [];
    const failures: FakeReply[] = [
      { status: 503, text: 'down' },
      { status: 429, headers: { 'retry-after': '9' }, json: { error: 'slow_down' } },
      {
        status: 401,
        headers: { 'www-authenticate': 'Basic realm="x", error="invalid_client"' },
        json: { error: 'invalid_client' },
      },
      { status: 400, json: { error: 'invalid_scope', error_description: 'scope x not allowed' } },
      tokenResponse('leaky-token', { token_type: 'mac' }),
      'reset',
    ];
    const haystack: string[] = [];
    for (const failure of failures) {
      as.reply = () => failure;
      const tokens = manager(
        { logger, failureBackoff: 0, retry: { attempts: 2, baseDelay: 0.01 } },
        { clientSecret: secret },
      );
      for (const name of [
        'token.requested',
        'token.failed',
        'token.renewed',
        'token.stale-served',
      ] as const) {
        tokens.on(name, (payload) => seen.push(JSON.stringify(payload)));
      }
      const error = await tokens.getAccessToken('c').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TokenManagerError);
      haystack.push(String(error), inspect(error, { depth: 10 }), JSON.stringify(error));
    }
    haystack.push(...logger.lines, ...seen);
    const all = haystack.join('\n');
    expect(all).toContain('ERR_TOKEN_INVALID_CLIENT');
    expect(all).not.toContain(secret);
    expect(all).not.toContain(encodeURIComponent(secret));
    expect(all).not.toContain(
      Buffer.from(`c1:${encodeURIComponent(secret)}`)
        .toString('base64')
        .slice(0, 12),
    );
    expect(all).not.toContain('leaky-token');
  });

  it('T9: without dpop, a token_type other than Bearer is rejected, not cached', async () => {
    as.reply = () => tokenResponse('t-mac', { token_type: 'mac' });
    await expect(manager().getAccessToken('c')).rejects.toMatchObject({ code: 'ERR_TOKEN_INVALID_RESPONSE' });
    expect(as.requests).toHaveLength(1);
  });

  it('T2: an AS that rejects the assertion typ → one retry without typ, which then sticks', async () => {
    const privateKey = {
      ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }),
      kid: 'k1',
    } as PrivateJwk;
    as.reply = (request) => {
      const header = JSON.parse(
        Buffer.from(request.form.get('client_assertion')!.split('.')[0]!, 'base64url').toString(),
      );
      return header.typ
        ? { status: 401, json: { error: 'invalid_client' } }
        : tokenResponse(`t-${as.requests.length}`);
    };
    const tokens = createTokenManager({
      clients: { c: { issuer: as.url, tokenEndpoint: `${as.url}/token`, clientId: 'c1', privateKey } },
    });
    await expect(tokens.getAccessToken('c')).resolves.toMatchObject({ accessToken: 't-2' });
    await expect(tokens.getAccessToken('c', { forceRenewal: true })).resolves.toMatchObject({
      accessToken: 't-3',
    });
    expect(as.requests).toHaveLength(3);
    const payload = JSON.parse(
      Buffer.from(as.requests[2]!.form.get('client_assertion')!.split('.')[1]!, 'base64url').toString(),
    );
    expect(payload.aud).toBe(as.url);
    const header = JSON.parse(
      Buffer.from(as.requests[2]!.form.get('client_assertion')!.split('.')[0]!, 'base64url').toString(),
    );
    expect(header).toEqual({ alg: 'ES256', kid: 'k1' });
  });
});
