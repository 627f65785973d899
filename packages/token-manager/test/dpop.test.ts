// DPoP (RFC 9449, SECURITY T9) against the real sample IdP (oidc-provider issues DPoP-bound JWT
// access tokens), a loopback resource server that checks every proof with jose, and a scripted
// token endpoint only for what the IdP cannot be made to do here (demand a nonce, ignore a proof).
import { createHash, generateKeyPairSync, webcrypto } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import {
  connectTestRedis,
  deleteRedisPrefix,
  type RunningIdp,
  requireRedis,
  startApi,
  startIdp,
  uniqueRedisPrefix,
} from '@gatehouse/testing';
import {
  calculateJwkThumbprint,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  EmbeddedJWK,
  type JWK,
  jwtVerify,
} from 'jose';
import type { RedisClientType } from 'redis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createTokenFetch,
  createTokenManager,
  type DpopOptions,
  type PrivateJwk,
  type TokenClientOptions,
  TokenManagerError,
  type TokenManagerOptions,
} from '../src/index.js';
import {
  captureLogger,
  type FakeServer,
  type SeenRequest,
  startFakeServer,
  tokenResponse,
} from './helpers.js';

const SECRET = 'worker-secret';
const API_AUDIENCE = 'urn:gatehouse:sample-api';
let idp: RunningIdp;
let as: FakeServer;
let rs: DpopResourceServer;

beforeAll(async () => {
  idp = await startIdp({ accessTokenTtl: 120 });
  as = await startFakeServer();
  rs = await startDpopResourceServer(idp.issuer);
});
afterAll(async () => {
  await rs?.close();
  await as?.close();
  await idp?.close();
});
beforeEach(() => {
  as.requests.length = 0;
  rs.seen.length = 0;
  rs.nonce = () => undefined;
  rs.rejectToken = () => false;
});

/** The sample IdP's `worker` client; `dpop: null` for a plain Bearer client. */
function worker(dpop: DpopOptions | null = { generate: 'ES256' }, extra: Partial<TokenClientOptions> = {}) {
  return {
    issuer: idp.issuer,
    clientId: 'worker',
    clientSecret: SECRET,
    scope: 'api.reports',
    ...(dpop ? { dpop } : {}),
    ...extra,
  };
}

/** A fetch that records the DPoP proofs sent to the IdP's token endpoint. */
function proofSpy(): { fetch: typeof fetch; proofs: string[] } {
  const proofs: string[] = [];
  return {
    proofs,
    fetch: (input, init) => {
      const proof = new Headers(init?.headers).get('dpop');
      if (proof) proofs.push(proof);
      return fetch(input, init);
    },
  };
}

const sha256 = (value: string) => createHash('sha256').update(value).digest('base64url');

describe('T9: DPoP-bound tokens from the real sample IdP', () => {
  it('T9: token_type DPoP; the JWT access token has cnf.jkt = the key thumbprint; fresh proof per request', async () => {
    const spy = proofSpy();
    const tokens = createTokenManager({ clients: { reports: worker() }, fetch: spy.fetch });
    const key = tokens.dpopKey('reports')!;
    expect(key.alg).toBe('ES256');
    expect(key.thumbprint).toBe(await calculateJwkThumbprint(key.publicJwk as JWK));

    const token = await tokens.getAccessToken('reports');
    expect(token).toMatchObject({ tokenType: 'DPoP', source: 'idp', scope: 'api.reports' });
    expect(decodeJwt(token.accessToken).cnf).toEqual({ jkt: key.thumbprint });

    const renewed = await tokens.getAccessToken('reports', { forceRenewal: true });
    expect(decodeJwt(renewed.accessToken).cnf).toEqual({ jkt: key.thumbprint });
    expect(spy.proofs).toHaveLength(2);
    const tokenEndpoint = `${idp.issuer}/token`;
    const payloads = spy.proofs.map((p) => decodeJwt(p));
    for (const [i, proof] of spy.proofs.entries()) {
      const header = decodeProtectedHeader(proof);
      expect(header).toMatchObject({ typ: 'dpop+jwt', alg: 'ES256' });
      expect(header.jwk).toEqual(key.publicJwk);
      expect(header.jwk).not.toHaveProperty('d');
      expect(payloads[i]).toMatchObject({ htm: 'POST', htu: tokenEndpoint });
      expect(Math.abs((payloads[i]!.iat as number) - Date.now() / 1000)).toBeLessThan(5);
      expect(payloads[i]).not.toHaveProperty('ath');
      await expect(jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt' })).resolves.toBeDefined();
    }
    expect(payloads[0]!.jti).not.toBe(payloads[1]!.jti);
  });

  const ownKeys: Array<[string, () => DpopOptions]> = [
    [
      'a private JWK',
      () => ({
        privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
          format: 'jwk',
        }) as PrivateJwk,
      }),
    ],
    ['a KeyObject', () => ({ privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey })],
    ['an Ed25519 KeyObject', () => ({ privateKey: generateKeyPairSync('ed25519').privateKey })],
    ['a generated Ed25519 key', () => ({ generate: 'Ed25519' })],
  ];
  it.each(ownKeys)('T9: %s works as the DPoP key; cnf.jkt matches its thumbprint', async (_label, dpop) => {
    const tokens = createTokenManager({ clients: { reports: worker(dpop()) } });
    const token = await tokens.getAccessToken('reports');
    expect(token.tokenType).toBe('DPoP');
    expect(decodeJwt(token.accessToken).cnf).toEqual({ jkt: tokens.dpopKey('reports')!.thumbprint });
  });

  it('T9: a non-extractable Web Crypto CryptoKey works too', async () => {
    const pair = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
      'sign',
      'verify',
    ])) as webcrypto.CryptoKeyPair;
    const tokens = createTokenManager({ clients: { reports: worker({ privateKey: pair.privateKey }) } });
    const token = await tokens.getAccessToken('reports');
    const publicJwk = await webcrypto.subtle.exportKey('jwk', pair.publicKey);
    expect(decodeJwt(token.accessToken).cnf).toEqual({ jkt: await calculateJwkThumbprint(publicJwk as JWK) });
  });

  it('T9/T4: the DPoP key is part of the cache key: a Bearer and a DPoP client never share a token', async () => {
    const tokens = createTokenManager({
      clients: { bearer: worker(null), bound: worker(), other: worker() },
    });
    const bearer = await tokens.getAccessToken('bearer');
    const bound = await tokens.getAccessToken('bound');
    const other = await tokens.getAccessToken('other');
    expect(bearer.tokenType).toBe('Bearer');
    expect(bound).toMatchObject({ tokenType: 'DPoP', source: 'idp' });
    expect(other).toMatchObject({ tokenType: 'DPoP', source: 'idp' });
    expect(new Set([bearer.accessToken, bound.accessToken, other.accessToken]).size).toBe(3);
    expect(decodeJwt(bearer.accessToken).cnf).toBeUndefined();
  });

  it('T1: no private key material in the key object, events, logs or errors', async () => {
    const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
    const logger = captureLogger();
    const tokens = createTokenManager({
      clients: { reports: worker({ privateKey: jwk as PrivateJwk }) },
      logger,
    });
    const seen: string[] = [];
    tokens.on('token.renewed', (e) => seen.push(JSON.stringify(e)));
    await tokens.getAccessToken('reports');
    const key = tokens.dpopKey('reports')!;
    const all = [
      inspect(key, { depth: 8 }),
      JSON.stringify(key),
      inspect(tokens, { depth: 8 }),
      ...seen,
      ...logger.lines,
    ].join('\n');
    expect(all).not.toContain(jwk.d!);
    expect(seen[0]).toContain('"tokenType":"DPoP"');
  });
});

describe('T9: DPoP at a scripted token endpoint (faults the IdP cannot produce on demand)', () => {
  function scripted(extra: Partial<TokenManagerOptions> = {}) {
    return createTokenManager({
      clients: {
        c: {
          tokenEndpoint: `${as.url}/token`,
          clientId: 'c1',
          clientSecret: 's1',
          dpop: { generate: 'ES256' },
        },
      },
      retry: { attempts: 3, baseDelay: 0.01 },
      failureBackoff: 0,
      ...extra,
    });
  }

  async function verifiedProof(request: SeenRequest) {
    const proof = request.headers.dpop;
    expect(typeof proof).toBe('string');
    const { payload, protectedHeader } = await jwtVerify(String(proof), EmbeddedJWK, { typ: 'dpop+jwt' });
    expect(payload).toMatchObject({ htm: 'POST', htu: `${as.url}/token` });
    return { payload, jkt: await calculateJwkThumbprint(protectedHeader.jwk!) };
  }

  it('T9: token_type Bearer while DPoP is configured → ERR_TOKEN_DPOP, nothing cached', async () => {
    as.reply = (_r, n) => tokenResponse(`plain-bearer-${n}`);
    const tokens = scripted();
    const error = await tokens.getAccessToken('c').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TokenManagerError);
    expect(error).toMatchObject({ code: 'ERR_TOKEN_DPOP', retryable: false, status: 502 });
    expect((error as Error).message).toMatch(/expected DPoP/);
    expect(inspect(error, { depth: 8 })).not.toContain('plain-bearer');
    await expect(tokens.getAccessToken('c')).rejects.toMatchObject({ code: 'ERR_TOKEN_DPOP' });
    // Not cached (and not retried as if transient): one request per call.
    expect(as.requests).toHaveLength(2);
  });

  it('T9: the AS asks for a nonce (400 use_dpop_nonce + DPoP-Nonce) → exactly one retry with it', async () => {
    const proofs: Array<Awaited<ReturnType<typeof verifiedProof>>> = [];
    as.reply = async (request, n) => {
      const proof = await verifiedProof(request);
      proofs.push(proof);
      if (proof.payload.nonce !== 'as-nonce-1') {
        return {
          status: 400,
          headers: { 'dpop-nonce': 'as-nonce-1' },
          json: { error: 'use_dpop_nonce', error_description: 'nonce required' },
        };
      }
      return tokenResponse(`bound-${n}`, { token_type: 'DPoP' });
    };
    const tokens = scripted();
    await expect(tokens.getAccessToken('c')).resolves.toMatchObject({
      accessToken: 'bound-2',
      tokenType: 'DPoP',
    });
    expect(as.requests).toHaveLength(2);
    expect(proofs[0]!.payload.nonce).toBeUndefined();
    expect(proofs[1]!.payload.nonce).toBe('as-nonce-1');
    expect(proofs[1]!.payload.jti).not.toBe(proofs[0]!.payload.jti);
    expect(proofs[1]!.jkt).toBe(tokens.dpopKey('c')!.thumbprint);
    // The nonce is remembered for that server: the next token request carries it at once.
    await expect(tokens.getAccessToken('c', { forceRenewal: true })).resolves.toMatchObject({
      accessToken: 'bound-3',
    });
    expect(as.requests).toHaveLength(3);
  });

  it('T9: a second use_dpop_nonce in a row → ERR_TOKEN_DPOP, no loop (2 requests despite 3 attempts)', async () => {
    as.reply = (_r, n) => ({
      status: 400,
      headers: { 'dpop-nonce': `rotating-${n}` },
      json: { error: 'use_dpop_nonce' },
    });
    const error = await scripted()
      .getAccessToken('c')
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_TOKEN_DPOP', oauthError: 'use_dpop_nonce', retryable: false });
    expect(as.requests).toHaveLength(2);
  });

  it('T9: use_dpop_nonce without a DPoP-Nonce header cannot be satisfied → error after one request', async () => {
    as.reply = () => ({ status: 400, json: { error: 'use_dpop_nonce' } });
    await expect(scripted().getAccessToken('c')).rejects.toMatchObject({ code: 'ERR_TOKEN_DPOP' });
    expect(as.requests).toHaveLength(1);
  });
});

/** A resource server that checks each DPoP-bound request the way RFC 9449 §4.3/§7 asks, with jose. */
interface DpopResourceServer {
  url: string;
  /** What each request looked like and how it was judged. */
  seen: Array<{
    method: string;
    status: number;
    reason: string;
    proof?: Record<string, unknown>;
    body: string;
  }>;
  /** The nonce the server currently requires for request `n` (1-based), or undefined for none. */
  nonce: (n: number) => string | undefined;
  /** Whether to answer `invalid_token` for this token (as if revoked). */
  rejectToken: (token: string) => boolean;
  close(): Promise<void>;
}

async function startDpopResourceServer(issuer: string): Promise<DpopResourceServer> {
  const metadata = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as {
    jwks_uri: string;
  };
  const jwks = createRemoteJWKSet(new URL(metadata.jwks_uri));
  const jtis = new Set<string>();
  const rs: DpopResourceServer = {
    url: '',
    seen: [],
    nonce: () => undefined,
    rejectToken: () => false,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const n = rs.seen.length + 1;
    const record: DpopResourceServer['seen'][number] = {
      method: req.method ?? '',
      status: 0,
      reason: '',
      body: Buffer.concat(chunks).toString(),
    };
    rs.seen.push(record);
    const answer = (status: number, reason: string, headers: Record<string, string> = {}) => {
      record.status = status;
      record.reason = reason;
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify({ reason }));
    };
    const invalid = (reason: string) =>
      answer(401, reason, { 'www-authenticate': 'DPoP error="invalid_dpop_proof"' });
    const auth = req.headers.authorization ?? '';
    if (!auth.startsWith('DPoP ')) return answer(401, 'not the DPoP scheme', { 'www-authenticate': 'DPoP' });
    const token = auth.slice(5);
    const proof = req.headers.dpop;
    if (typeof proof !== 'string') return invalid('no single DPoP header');
    try {
      const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, {
        typ: 'dpop+jwt',
        algorithms: ['ES256', 'ES384', 'EdDSA', 'Ed25519', 'PS256'],
      });
      record.proof = payload;
      if (protectedHeader.jwk && 'd' in protectedHeader.jwk) return invalid('private key in jwk');
      if (payload.htm !== req.method) return invalid('htm');
      // htu from configuration (our own address), never from Host/X-Forwarded-*; no query.
      if (payload.htu !== `${rs.url}${new URL(req.url ?? '/', rs.url).pathname}`) return invalid('htu');
      if (typeof payload.iat !== 'number' || Math.abs(payload.iat - Date.now() / 1000) > 60)
        return invalid('iat');
      if (typeof payload.jti !== 'string' || jtis.has(payload.jti)) return invalid('jti replay');
      jtis.add(payload.jti);
      if (payload.ath !== sha256(token)) return invalid('ath');
      const { payload: claims } = await jwtVerify(token, jwks, {
        issuer,
        audience: API_AUDIENCE,
        typ: 'at+jwt',
      });
      const jkt = await calculateJwkThumbprint(protectedHeader.jwk!);
      if ((claims.cnf as { jkt?: string } | undefined)?.jkt !== jkt) {
        return answer(401, 'jkt mismatch', { 'www-authenticate': 'DPoP error="invalid_token"' });
      }
      const nonce = rs.nonce(n);
      if (nonce !== undefined && payload.nonce !== nonce) {
        return answer(401, 'nonce', {
          'www-authenticate': 'DPoP error="use_dpop_nonce"',
          'dpop-nonce': nonce,
        });
      }
      if (rs.rejectToken(token))
        return answer(401, 'revoked', { 'www-authenticate': 'DPoP error="invalid_token"' });
      return answer(200, 'ok');
    } catch (error) {
      return invalid(error instanceof Error ? error.message : 'bad proof');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  rs.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return rs;
}

describe('T9: createTokenFetch with DPoP at a resource server that checks every proof', () => {
  function setup(extra: Partial<TokenClientOptions> = {}) {
    const tokens = createTokenManager({ clients: { reports: worker({ generate: 'ES256' }, extra) } });
    return { tokens, api: createTokenFetch(tokens, 'reports') };
  }

  it('T9: Authorization: DPoP + a proof with htm, htu (no query), iat, fresh jti and ath → 200', async () => {
    const { api } = setup();
    const first = await api(`${rs.url}/reports?since=2024-01-01#frag`);
    const second = await api(`${rs.url}/reports?since=2024-01-02`);
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(rs.seen.map((s) => s.reason)).toEqual(['ok', 'ok']);
    expect(rs.seen[0]!.proof).toMatchObject({ htm: 'GET', htu: `${rs.url}/reports` });
    expect(rs.seen[0]!.proof!.jti).not.toBe(rs.seen[1]!.proof!.jti);
    expect(rs.seen[0]!.proof!.ath).toBe(rs.seen[1]!.proof!.ath); // same cached token
  });

  it('T9: the RS asks for a nonce → one retry with it (2 requests), later calls carry it at once', async () => {
    const { api } = setup();
    rs.nonce = () => 'rs-nonce-A';
    const response = await api(`${rs.url}/reports`);
    expect(response.status).toBe(200);
    expect(rs.seen.map((s) => s.reason)).toEqual(['nonce', 'ok']);
    expect(rs.seen[1]!.proof!.nonce).toBe('rs-nonce-A');
    expect((await api(`${rs.url}/reports`)).status).toBe(200);
    expect(rs.seen).toHaveLength(3);
  });

  it('T9: an RS that wants a new nonce every time → exactly one retry, then its 401 as is (no loop)', async () => {
    const { api } = setup();
    rs.nonce = (n) => `rotating-${n}`;
    const response = await api(`${rs.url}/reports`);
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toContain('use_dpop_nonce');
    expect(rs.seen.map((s) => s.reason)).toEqual(['nonce', 'nonce']);
  });

  it('T9: a POST with a string body is resent with the nonce (refused before it was acted on); a stream is not', async () => {
    const { api } = setup();
    rs.nonce = () => 'rs-nonce-B';
    const posted = await api(`${rs.url}/jobs`, { method: 'POST', body: '{"run":1}' });
    expect(posted.status).toBe(200);
    expect(rs.seen.map((s) => [s.method, s.reason, s.body])).toEqual([
      ['POST', 'nonce', '{"run":1}'],
      ['POST', 'ok', '{"run":1}'],
    ]);
    const { api: fresh } = setup();
    rs.seen.length = 0;
    rs.nonce = (n) => `stream-${n}`;
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('x'));
        controller.close();
      },
    });
    const streamed = await fresh(`${rs.url}/jobs`, {
      method: 'POST',
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(streamed.status).toBe(401);
    expect(rs.seen).toHaveLength(1);
  });

  it('T8/T9: DPoP invalid_token → the token is renewed once and the call retried with a new proof', async () => {
    const { tokens, api } = setup();
    const first = await tokens.getAccessToken('reports');
    rs.rejectToken = (token) => token === first.accessToken;
    const before = idp.counters.token();
    const response = await api(`${rs.url}/reports`);
    expect(response.status).toBe(200);
    expect(idp.counters.token() - before).toBe(1);
    expect(rs.seen.map((s) => s.reason)).toEqual(['revoked', 'ok']);
    expect(rs.seen[1]!.proof!.ath).not.toBe(rs.seen[0]!.proof!.ath);
  });

  it('T9: a DPoP-bound token is never sent as Bearer', async () => {
    const { api } = setup();
    const seen: string[] = [];
    const tokens = createTokenManager({ clients: { reports: worker() } });
    const spying = createTokenFetch(tokens, 'reports', {
      fetch: (input, init) => {
        seen.push(new Headers(init?.headers).get('authorization') ?? '');
        return fetch(input, init);
      },
    });
    await spying(`${rs.url}/reports`);
    await api(`${rs.url}/reports`);
    expect(seen[0]).toMatch(/^DPoP ey/);
    expect(rs.seen.every((s) => s.reason === 'ok')).toBe(true);
  });
});

describe('T9: the real sample API with DPoP required and server nonces', () => {
  it('T9: /api/reports (DPoP only, nonces on) → one nonce retry, then 200; a Bearer client gets 401', async () => {
    const api = await startApi({ issuer: idp.issuer, requireDPoP: true, dpopNonce: true });
    try {
      const statuses: number[] = [];
      const spy: typeof fetch = async (input, init) => {
        const response = await fetch(input, init);
        statuses.push(response.status);
        return response;
      };
      const tokens = createTokenManager({ clients: { reports: worker(), plain: worker(null) } });
      const dpopFetch = createTokenFetch(tokens, 'reports', { fetch: spy });
      const response = await dpopFetch(`${api.url}/api/reports`);
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ requestedBy: 'worker' });
      expect(statuses).toEqual([401, 200]);
      // The nonce is kept for this API: the next call needs no retry.
      expect((await dpopFetch(`${api.url}/api/reports`)).status).toBe(200);
      expect(statuses).toEqual([401, 200, 200]);
      // A Bearer token is refused by the DPoP-only endpoint.
      expect((await createTokenFetch(tokens, 'plain')(`${api.url}/api/reports`)).status).toBe(401);
    } finally {
      await api.close();
    }
  });
});

const redisReady = await requireRedis('token-manager DPoP shared cache');

describe.skipIf(!redisReady)('T9/T4: DPoP tokens in the shared (Redis) cache', () => {
  let redis: RedisClientType;
  const prefix = uniqueRedisPrefix('token-manager-dpop');
  beforeAll(async () => {
    redis = await connectTestRedis();
  });
  afterAll(async () => {
    if (redis) {
      await deleteRedisPrefix(redis, prefix);
      await redis.close();
    }
  });
  const shared = (dpop: DpopOptions) =>
    createTokenManager({
      clients: { reports: worker(dpop) },
      sharedCache: {
        redis,
        keyPrefix: prefix,
        encryptionSecret: 'a-test-secret-of-at-least-32-characters!',
        commandTimeout: 2,
      },
    });

  it('T9/T4: two processes with their own generated keys never share a token; with the same key they do', async () => {
    const before = idp.counters.token();
    const a = await shared({ generate: 'ES256' }).getAccessToken('reports');
    const b = await shared({ generate: 'ES256' }).getAccessToken('reports');
    expect([a.source, b.source]).toEqual(['idp', 'idp']);
    expect(decodeJwt(a.accessToken).cnf).not.toEqual(decodeJwt(b.accessToken).cnf);
    expect(idp.counters.token() - before).toBe(2);

    const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
      format: 'jwk',
    }) as PrivateJwk;
    const c = await shared({ privateKey: jwk }).getAccessToken('reports');
    const d = await shared({ privateKey: jwk }).getAccessToken('reports');
    expect(c.source).toBe('idp');
    expect(d).toMatchObject({ source: 'shared', tokenType: 'DPoP', accessToken: c.accessToken });
  });
});
