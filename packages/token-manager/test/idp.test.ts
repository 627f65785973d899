// Against the real sample IdP (oidc-provider) in-process on 127.0.0.1.
import { inspect } from 'node:util';
import { type RunningIdp, startIdp } from '@gatehouse/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenManager, type TokenClientOptions, TokenManagerError } from '../src/index.js';
import { captureLogger, fakeClock } from './helpers.js';

const SECRET = 'worker-secret';
let idp: RunningIdp;

beforeAll(async () => {
  idp = await startIdp({ accessTokenTtl: 120 });
});
afterAll(async () => {
  await idp?.close();
});

function worker(extra: Partial<TokenClientOptions> = {}): TokenClientOptions {
  return { issuer: idp.issuer, clientId: 'worker', clientSecret: SECRET, scope: 'api.reports', ...extra };
}

/** Token-endpoint requests the IdP saw while `fn` ran. */
async function countRequests(fn: () => Promise<unknown>): Promise<number> {
  const before = idp.counters.token();
  await fn();
  return idp.counters.token() - before;
}

function decodePart(jwt: string, index: 0 | 1): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[index]!, 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;
}

describe('token manager against the sample IdP', () => {
  it('T1/T4: gets a Bearer token, then serves the same token from the cache without a request', async () => {
    const tokens = createTokenManager({ clients: { reports: worker() } });
    const first = await tokens.getAccessToken('reports');
    expect(first).toMatchObject({
      tokenType: 'Bearer',
      scope: 'api.reports',
      fromCache: false,
      source: 'idp',
    });
    expect(first.expiresAt.getTime() - Date.now()).toBeGreaterThan(100_000);
    let second: Awaited<ReturnType<typeof tokens.getAccessToken>> | undefined;
    const requests = await countRequests(async () => {
      second = await tokens.getAccessToken('reports');
    });
    expect(requests).toBe(0);
    expect(second).toMatchObject({ accessToken: first.accessToken, fromCache: true, source: 'memory' });
  });

  it('T5: 100 concurrent getAccessToken calls cause exactly one token request', async () => {
    const tokens = createTokenManager({ clients: { reports: worker() } });
    let results: Array<{ accessToken: string }> = [];
    const requests = await countRequests(async () => {
      results = await Promise.all(Array.from({ length: 100 }, () => tokens.getAccessToken('reports')));
    });
    expect(requests).toBe(1);
    expect(new Set(results.map((r) => r.accessToken)).size).toBe(1);
  });

  it('T4: renews renewalMargin seconds before expires_in runs out (fake clock)', async () => {
    const clock = fakeClock();
    const tokens = createTokenManager({
      clients: { reports: worker() },
      renewalMargin: 30,
      clock: clock.now,
    });
    const first = await tokens.getAccessToken('reports');
    clock.advance(89); // expires_in 120 - margin 30 = 90
    expect(await countRequests(() => tokens.getAccessToken('reports'))).toBe(0);
    clock.advance(2);
    let renewed: { accessToken: string; fromCache: boolean } | undefined;
    expect(
      await countRequests(async () => {
        renewed = await tokens.getAccessToken('reports');
      }),
    ).toBe(1);
    expect(renewed?.accessToken).not.toBe(first.accessToken);
    expect(renewed?.fromCache).toBe(false);
  });

  it('T4: a lifetime shorter than twice the margin renews at half the lifetime, not on every call', async () => {
    const clock = fakeClock();
    const tokens = createTokenManager({
      clients: { reports: worker() },
      renewalMargin: 300,
      clock: clock.now,
    });
    await tokens.getAccessToken('reports');
    clock.advance(59);
    expect(await countRequests(() => tokens.getAccessToken('reports'))).toBe(0);
    clock.advance(2);
    expect(await countRequests(() => tokens.getAccessToken('reports'))).toBe(1);
  });

  it('T4: forceRenewal discards the cached token and gets a new one', async () => {
    const tokens = createTokenManager({ clients: { reports: worker() } });
    const first = await tokens.getAccessToken('reports');
    const forced = await tokens.getAccessToken('reports', { forceRenewal: true });
    expect(forced.accessToken).not.toBe(first.accessToken);
    expect(forced.source).toBe('idp');
  });

  it('T4: scope and resource keep separate cache entries', async () => {
    const tokens = createTokenManager({ clients: { reports: worker() } });
    const byDefault = await tokens.getAccessToken('reports');
    const withResource = await tokens.getAccessToken('reports', { resource: 'urn:gatehouse:sample-api' });
    const noScope = await tokens.getAccessToken('reports', { scope: [] });
    expect(new Set([byDefault.accessToken, withResource.accessToken, noScope.accessToken]).size).toBe(3);
    expect(noScope.scope).toBeUndefined();
    // Each key now hits its own entry, and scope order does not matter.
    const again = await Promise.all([
      tokens.getAccessToken('reports', { scope: ' api.reports ' }),
      tokens.getAccessToken('reports', { resource: ['urn:gatehouse:sample-api'] }),
      tokens.getAccessToken('reports', { scope: '' }),
    ]);
    expect(again.map((t) => t.accessToken)).toEqual([
      byDefault.accessToken,
      withResource.accessToken,
      noScope.accessToken,
    ]);
    expect(again.every((t) => t.fromCache)).toBe(true);
  });

  it('T3: client_secret_post authenticates too', async () => {
    const tokens = createTokenManager({
      clients: { reports: worker({ clientAuthentication: 'client_secret_post' }) },
    });
    await expect(tokens.getAccessToken('reports')).resolves.toMatchObject({ scope: 'api.reports' });
  });

  it('uses an explicit tokenEndpoint without discovery', async () => {
    const urls: string[] = [];
    const spy: typeof fetch = (input, init) => {
      urls.push(String(input));
      return fetch(input, init);
    };
    const tokens = createTokenManager({
      clients: {
        reports: {
          tokenEndpoint: `${idp.issuer}/token`,
          clientId: 'worker',
          clientSecret: SECRET,
          scope: 'api.reports',
        },
      },
      fetch: spy,
    });
    await tokens.getAccessToken('reports');
    expect(urls).toEqual([`${idp.issuer}/token`]);
  });

  it('T2: private_key_jwt works, with a fresh jti, exp <= 60 s, aud = issuer and typ per 7523bis', async () => {
    const assertions: string[] = [];
    const spy: typeof fetch = (input, init) => {
      if (init?.body instanceof URLSearchParams || typeof init?.body === 'string') {
        const assertion = new URLSearchParams(init.body).get('client_assertion');
        if (assertion) assertions.push(assertion);
      }
      return fetch(input, init);
    };
    const tokens = createTokenManager({
      clients: {
        reports: {
          issuer: idp.issuer,
          clientId: 'worker-jwt',
          privateKey: idp.workerPrivateJwk as never,
          scope: 'api.reports',
        },
      },
      fetch: spy,
    });
    for (let i = 0; i < 3; i++) {
      await expect(tokens.getAccessToken('reports', { forceRenewal: true })).resolves.toMatchObject({
        source: 'idp',
      });
    }
    expect(assertions).toHaveLength(3);
    const payloads = assertions.map((a) => decodePart(a, 1));
    expect(new Set(payloads.map((p) => p.jti)).size).toBe(3);
    for (const [i, payload] of payloads.entries()) {
      expect(payload).toMatchObject({ iss: 'worker-jwt', sub: 'worker-jwt', aud: idp.issuer });
      expect(typeof payload.aud).toBe('string');
      expect((payload.exp as number) - (payload.iat as number)).toBeLessThanOrEqual(60);
      expect(decodePart(assertions[i]!, 0)).toMatchObject({ typ: 'client-authentication+jwt', alg: 'ES256' });
    }
  });

  it('T2: private_key_jwt with aud = token endpoint (for older servers) also works', async () => {
    const tokens = createTokenManager({
      clients: {
        reports: {
          issuer: idp.issuer,
          clientId: 'worker-jwt',
          privateKey: idp.workerPrivateJwk as never,
          clientAssertion: { audience: 'token_endpoint', typ: false },
          scope: 'api.reports',
        },
      },
    });
    await expect(tokens.getAccessToken('reports')).resolves.toMatchObject({ scope: 'api.reports' });
  });

  it('T6/T1: a wrong secret gives a typed error after exactly one request, no loop, no secret anywhere', async () => {
    const wrongSecret = 'not-the-Secret-42';
    const logger = captureLogger();
    const clock = fakeClock();
    const events: string[] = [];
    const tokens = createTokenManager({
      clients: { reports: worker({ clientSecret: wrongSecret }) },
      failureBackoff: 10,
      logger,
      clock: clock.now,
    });
    for (const name of ['token.requested', 'token.failed', 'token.renewed'] as const) {
      tokens.on(name, (payload) => events.push(JSON.stringify({ name, ...payload })));
    }
    const errors: unknown[] = [];
    const requests = await countRequests(async () => {
      // A hot loop of callers within the backoff window.
      for (let i = 0; i < 25; i++)
        errors.push(await tokens.getAccessToken('reports').catch((e: unknown) => e));
    });
    expect(requests).toBe(1);
    for (const error of errors) {
      expect(error).toBeInstanceOf(TokenManagerError);
      expect(error).toMatchObject({
        code: 'ERR_TOKEN_INVALID_CLIENT',
        oauthError: 'invalid_client',
        status: 502,
        retryable: false,
      });
    }
    // After the window, one new request (still failing), never more.
    clock.advance(11);
    expect(await countRequests(() => tokens.getAccessToken('reports').catch(() => {}))).toBe(1);

    const basic = Buffer.from(`worker:${wrongSecret}`).toString('base64');
    const haystack = [
      ...logger.lines,
      ...events,
      ...errors.map((e) => `${String(e)} ${inspect(e, { depth: 8 })} ${JSON.stringify(e)}`),
    ].join('\n');
    expect(logger.lines.some((line) => line.includes('ERR_TOKEN_INVALID_CLIENT'))).toBe(true);
    expect(haystack).not.toContain(wrongSecret);
    expect(haystack).not.toContain(basic);
  });

  it('T6: invalid_scope is a typed error, not retried', async () => {
    const tokens = createTokenManager({ clients: { reports: worker({ scope: 'openid' }) } });
    let error: unknown;
    const requests = await countRequests(async () => {
      error = await tokens.getAccessToken('reports').catch((e: unknown) => e);
    });
    expect(requests).toBe(1);
    expect(error).toMatchObject({ code: 'ERR_TOKEN_INVALID_SCOPE', oauthError: 'invalid_scope' });
  });

  it('no token appears in log lines or events of a successful run', async () => {
    const logger = captureLogger();
    const events: string[] = [];
    const tokens = createTokenManager({ clients: { reports: worker() }, logger });
    for (const name of ['token.requested', 'token.renewed', 'token.cache-hit'] as const) {
      tokens.on(name, (payload) => events.push(JSON.stringify(payload)));
    }
    const { accessToken } = await tokens.getAccessToken('reports');
    await tokens.getAccessToken('reports');
    expect(events.length).toBe(3);
    expect([...logger.lines, ...events].join('\n')).not.toContain(accessToken);
    expect([...logger.lines, ...events].join('\n')).not.toContain(SECRET);
  });
});
