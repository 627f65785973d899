// The BFF's own client: client-credentials tokens (through @gatehouse/token-manager) and
// private_key_jwt client authentication.
import { createBff } from '@gatehouse/bff';
import * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SESSION_SECRET, type Stack, startStack } from './support-core/stack.js';

describe("the BFF's own client", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack?.close());

  it('getClientAccessToken: a client-credentials token, cached and single-flight', async () => {
    const ctx = stack.bff.app.bff.context;
    const tokens = await Promise.all(
      Array.from({ length: 10 }, () => ctx.getClientAccessToken({ scope: 'api' })),
    );
    expect(new Set(tokens).size).toBe(1);
    expect(tokens[0]).toMatch(/^eyJ/);
    expect(await ctx.getClientAccessToken({ scope: 'api' })).toBe(tokens[0]);
    expect(stack.idp.counters.token('client_credentials')).toBe(1);
  });

  it('getClientAccessToken: the token endpoint down → BffError 503', async () => {
    stack.tap.intercept = (url) =>
      url.pathname === '/token' ? new Response('down', { status: 503 }) : undefined;
    try {
      await expect(stack.bff.app.bff.context.getClientAccessToken({ scope: 'openid' })).rejects.toMatchObject(
        {
          name: 'BffError',
          status: 503,
        },
      );
    } finally {
      stack.tap.intercept = undefined;
    }
  });

  it('private_key_jwt: a private JWK authenticates the BFF client at the token endpoint', async () => {
    const jwk = stack.idp.workerPrivateJwk;
    expect(jwk).toBeDefined();
    const bff = createBff({
      issuer: stack.idp.issuer,
      clientId: 'worker-jwt',
      clientPrivateKey: jwk!,
      baseUrl: 'http://localhost:1',
      sessionSecret: SESSION_SECRET,
    });
    try {
      await bff.ready();
      const response = await client.clientCredentialsGrant(await bff.context.getOidcConfiguration(), {
        scope: 'api.reports',
      });
      expect(response.access_token).toMatch(/^eyJ/);
      expect(await bff.context.getClientAccessToken({ scope: 'api.reports' })).toMatch(/^eyJ/);
    } finally {
      await bff.close();
    }
  });
});
