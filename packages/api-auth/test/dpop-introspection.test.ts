// A10 with A9: DPoP-bound opaque tokens from the real sample IdP, introspected (the response carries
// token_type DPoP and cnf.jkt) and checked the same way as JWTs. And A10 across two API instances
// sharing the Redis replay cache.
import { randomUUID } from 'node:crypto';
import {
  connectTestRedis,
  deleteRedisPrefix,
  type RunningIdp,
  requireRedis,
  startIdp,
  uniqueRedisPrefix,
} from '@gatehouse/testing';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AccessTokenError,
  type AccessTokenValidatorOptions,
  createAccessTokenValidator,
  createRedisReplayStore,
} from '../src/index.js';
import { accessTokenHash } from '../src/lib/dpop.js';

const AUDIENCE = 'urn:gatehouse:sample-api';
const PUBLIC_URL = 'http://127.0.0.1:4999';
type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;

let jwtIdp: RunningIdp;
let opaqueIdp: RunningIdp;
let key: KeyPair;
let other: KeyPair;
let jkt: string;

async function boundToken(idp: RunningIdp): Promise<string> {
  const worker = await oidc.discovery(
    new URL(idp.url),
    'worker',
    undefined,
    oidc.ClientSecretBasic('worker-secret'),
    { execute: [oidc.allowInsecureRequests] },
  );
  const response = await oidc.clientCredentialsGrant(
    worker,
    { scope: 'api.reports' },
    { DPoP: oidc.getDPoPHandle(worker, key) },
  );
  return response.access_token;
}

async function proof(token: string, signer: KeyPair = key): Promise<string> {
  return new SignJWT({
    htm: 'GET',
    htu: `${PUBLIC_URL}/api/reports`,
    iat: Math.floor(Date.now() / 1000),
    jti: randomUUID(),
    ath: accessTokenHash(token),
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(signer.publicKey) })
    .sign(signer.privateKey);
}

const request = (dpop: string) => ({ proof: dpop, method: 'GET', url: '/api/reports' });

async function rejection(promise: Promise<unknown>): Promise<AccessTokenError> {
  try {
    await promise;
  } catch (error) {
    return error as AccessTokenError;
  }
  throw new Error('expected a rejection');
}

beforeAll(async () => {
  [jwtIdp, opaqueIdp] = await Promise.all([startIdp(), startIdp({ accessTokenFormat: 'opaque' })]);
  [key, other] = await Promise.all([generateKeyPair('ES256'), generateKeyPair('ES256')]);
  jkt = await calculateJwkThumbprint(await exportJWK(key.publicKey));
}, 60_000);
afterAll(async () => {
  await Promise.all([jwtIdp?.close(), opaqueIdp?.close()]);
});

describe('A10/A9: DPoP-bound opaque tokens via introspection', () => {
  const make = (options: Partial<AccessTokenValidatorOptions> = {}) =>
    createAccessTokenValidator({
      issuer: opaqueIdp.issuer,
      audience: AUDIENCE,
      introspection: { clientId: 'api', clientSecret: 'api-secret' },
      dpop: { publicUrl: PUBLIC_URL },
      ...options,
    });

  it('A10: a valid proof → accepted; the introspection response carried cnf.jkt of the proof key', async () => {
    const token = await boundToken(opaqueIdp);
    expect(token.split('.')).toHaveLength(1);
    const auth = await make().validateDPoP(token, request(await proof(token)));
    expect(auth).toMatchObject({ source: 'introspection', kind: 'client', dpop: { jkt } });
    expect(auth.claims.cnf).toEqual({ jkt });
    expect(String(auth.claims.token_type).toLowerCase()).toBe('dpop');
  });

  it('A10: the same token as Bearer → 401 invalid_token, also once its introspection result is cached', async () => {
    const validator = make();
    const token = await boundToken(opaqueIdp);
    await validator.validateDPoP(token, request(await proof(token)));
    const error = await rejection(validator.validate(token));
    expect(error.code).toBe('ERR_API_AUTH_INVALID_TOKEN');
    expect(error.description).toMatch(/DPoP scheme/);
  });

  it('A10: a proof with another key → 401 invalid_token (cnf.jkt mismatch), also from the cache', async () => {
    const validator = make();
    const token = await boundToken(opaqueIdp);
    const first = await rejection(validator.validateDPoP(token, request(await proof(token, other))));
    expect(first.code).toBe('ERR_API_AUTH_INVALID_TOKEN');
    expect(first.description).toMatch(/cnf\.jkt/);
    await validator.validateDPoP(token, request(await proof(token)));
    const cached = await rejection(validator.validateDPoP(token, request(await proof(token, other))));
    expect(cached.description).toMatch(/cnf\.jkt/);
  });

  it('A10: a bad proof costs no introspection call', async () => {
    let calls = 0;
    const validator = make({
      fetch: (input, init) => {
        if (String(input).endsWith('/token/introspection')) calls++;
        return fetch(input, init);
      },
    });
    const token = await boundToken(opaqueIdp);
    const error = await rejection(
      validator.validateDPoP(token, { ...request(await proof(token)), method: 'POST' }),
    );
    expect(error.code).toBe('ERR_API_AUTH_INVALID_DPOP_PROOF');
    expect(calls).toBe(0);
  });
});

const redisReady = await requireRedis('api-auth DPoP across instances');
describe.skipIf(!redisReady)('A10: two API instances sharing the Redis replay cache', () => {
  it('A10: a proof accepted by one instance is a replay at the other; with memory caches it would pass twice', async () => {
    const prefix = uniqueRedisPrefix('api-auth-dpop-instances');
    const [a, b] = [await connectTestRedis(), await connectTestRedis()];
    try {
      const instance = (client: typeof a, shared: boolean) =>
        createAccessTokenValidator({
          issuer: jwtIdp.issuer,
          audience: AUDIENCE,
          dpop: {
            publicUrl: PUBLIC_URL,
            ...(shared ? { replayStore: createRedisReplayStore({ client, prefix }) } : {}),
          },
        });
      const token = await boundToken(jwtIdp);
      const once = await proof(token);
      await expect(instance(a, true).validateDPoP(token, request(once))).resolves.toMatchObject({
        dpop: { jkt },
      });
      const replay = await rejection(instance(b, true).validateDPoP(token, request(once)));
      expect(replay.code).toBe('ERR_API_AUTH_INVALID_DPOP_PROOF');
      expect(replay.description).toMatch(/already used/);
      // The control: per-process memory caches cannot see each other.
      const twice = await proof(token);
      await instance(a, false).validateDPoP(token, request(twice));
      await expect(instance(b, false).validateDPoP(token, request(twice))).resolves.toBeDefined();
    } finally {
      await deleteRedisPrefix(a, prefix);
      await Promise.all([a.close(), b.close()]);
    }
  });
});
