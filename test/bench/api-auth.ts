// Validations per second of @gatehouse/api-auth on a cached key, side by side in one run with
//  - raw `jose.jwtVerify` on the same token and the same (already imported) key: the floor, and
//  - express-oauth2-jwt-bearer's `auth()` middleware (strict RFC 9068 mode) on the same token: the peer.
// The token is a real RS256 `at+jwt` client-credentials token from the sample IdP. Middlewares are
// called directly with minimal req/res objects (no HTTP, no Express router), so the figures are the
// cost of token validation itself. Goal: requireAccessToken ≥ 0.9× raw jose, and faster than the peer.
//
// Standalone: node --conditions=@gatehouse/source --import tsx test/bench/api-auth.ts (BENCH_SECONDS=2)
import { pathToFileURL } from 'node:url';
import { createAccessTokenValidator, requireAccessToken } from '@gatehouse/api-auth';
import { startApiTokenSource } from '@gatehouse/testing';
import type { NextFunction, Request, Response } from 'express';
import { decodeProtectedHeader, importJWK, type JWTVerifyOptions, jwtVerify } from 'jose';
import { type BenchRow, measureCalls, printTable } from './harness.js';

const AUDIENCE = 'urn:gatehouse:sample-api';
type Middleware = (req: Request, res: Response, next: NextFunction) => unknown;

/**
 * Calls a middleware with a minimal request object and resolves when it calls next() without an
 * error. The request is built once and reused (only `auth` is reset), so the harness allocates
 * nothing per call and both middlewares pay the same, negligible harness cost.
 */
function runner(middleware: Middleware, token: string): () => Promise<Request> {
  const res = {} as Response;
  // A flat string, as Node hands it over (not a fresh concatenation per call).
  const authorization = `Bearer ${token}`.split('').join('');
  const headers: Record<string, string> = { authorization, host: '127.0.0.1:4001' };
  const req = {
    headers,
    method: 'GET',
    url: '/api/whoami',
    originalUrl: '/api/whoami',
    protocol: 'http',
    query: {},
    body: undefined,
    auth: undefined,
    socket: { remoteAddress: '127.0.0.1' },
    get: (name: string) => headers[name.toLowerCase()],
    is: () => false,
  } as unknown as Request;
  return () =>
    new Promise<Request>((resolve, reject) => {
      req.auth = undefined;
      middleware(req, res, (error?: unknown) => (error ? reject(error) : resolve(req)));
    });
}

export async function main(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 2);
  const source = await startApiTokenSource();
  try {
    const { idp } = source;
    const token = await source.clientToken();
    const { kid } = decodeProtectedHeader(token);
    const jwk = idp.publicJwks().keys.find((key) => key.kid === kid);
    if (!jwk) throw new Error('the token kid is not in the IdP JWKS');
    const key = await importJWK(jwk, 'RS256');

    const joseOptions: JWTVerifyOptions = {
      issuer: idp.issuer,
      audience: AUDIENCE,
      algorithms: ['RS256'],
      typ: 'at+jwt',
      clockTolerance: 5,
      requiredClaims: ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti'],
    };
    const validator = createAccessTokenValidator({ issuer: idp.issuer, audience: AUDIENCE });
    await validator.warmUp();
    const ours = runner(requireAccessToken(validator) as Middleware, token);

    // Imported by name at run time: its global `req.auth` typing would clash with ours at compile time.
    const peerName = 'express-oauth2-jwt-bearer';
    const peerModule = (await import(peerName)) as { auth(options: Record<string, unknown>): Middleware };
    const peer = runner(
      peerModule.auth({
        issuerBaseURL: idp.issuer,
        audience: AUDIENCE,
        tokenSigningAlg: 'RS256',
        strict: true,
      }),
      token,
    );

    // Sanity: every contender accepts the token (and warms its key cache) before timing.
    await jwtVerify(token, key, joseOptions);
    const check = (await ours()).auth;
    if (check?.claims.client_id !== 'worker') throw new Error('requireAccessToken did not set req.auth');
    const peerAuth = (await peer()) as unknown as { auth?: { payload?: { client_id?: string } } };
    if (peerAuth.auth?.payload?.client_id !== 'worker') throw new Error('the peer did not accept the token');

    const contenders: Array<{ name: string; fn: () => unknown; note: string }> = [
      {
        name: 'jose.jwtVerify',
        fn: () => jwtVerify(token, key, joseOptions),
        note: 'floor: imported key, same checks',
      },
      { name: 'jose.jwtVerify (no claim checks)', fn: () => jwtVerify(token, key), note: 'signature only' },
      { name: 'validator.validate', fn: () => validator.validate(token), note: 'our core, JWKS-cached key' },
      { name: 'requireAccessToken', fn: ours, note: 'our middleware, direct call' },
      { name: 'express-oauth2-jwt-bearer', fn: peer, note: 'peer middleware (strict), direct call' },
    ];
    for (const contender of contenders) await measureCalls(contender.fn, 0.2); // warm-up (JIT, key caches)

    // Interleaved per call (each round runs every contender once, in random order), each call timed. The
    // machine is shared and its load drifts by more than the differences measured here (sequential
    // measureCalls runs of the same code differed up to 2× between minutes), so every contender must
    // see the same moments; and since a busy scheduler adds millisecond stalls to random calls, the
    // rate reported is 1 / median call time (the mean-based rate is in the note).
    const durations: number[][] = contenders.map(() => []);
    const until = performance.now() + seconds * contenders.length * 1000;
    const order = contenders.map((_, i) => i);
    while (performance.now() < until) {
      // A fresh random order each round: a fixed order lets one contender's garbage land on its successor.
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      for (const index of order) {
        const t0 = performance.now();
        await contenders[index]!.fn();
        durations[index]!.push(performance.now() - t0);
      }
    }
    const rows: BenchRow[] = contenders.map((c, i) => {
      const sorted = [...durations[i]!].sort((x, y) => x - y);
      const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
      const mean = sorted.reduce((sum, d) => sum + d, 0) / sorted.length;
      return {
        name: c.name,
        opsPerSec: 1000 / at(0.5),
        p50Ms: at(0.5),
        p99Ms: at(0.99),
        note: `${c.note}; mean-based ${(1000 / mean).toFixed(0)}/s over ${sorted.length} calls`,
      };
    });
    printTable(
      `api-auth: RS256 at+jwt validations per second (calls interleaved, ${seconds} s per contender, rate = 1 / median call)`,
      rows,
      'jose.jwtVerify',
    );
    const rate = (name: string) => rows.find((row) => row.name === name)!.opsPerSec;
    console.log(
      `requireAccessToken = ${(rate('requireAccessToken') / rate('jose.jwtVerify')).toFixed(2)}× raw jose.jwtVerify (goal ≥ 0.90), ` +
        `${(rate('requireAccessToken') / rate('express-oauth2-jwt-bearer')).toFixed(2)}× express-oauth2-jwt-bearer (goal > 1)`,
    );
  } finally {
    await source.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
