// Validations per second of @gatehouse/api-auth on a cached key, side by side in one run with
//  - raw `jose.jwtVerify` on the same token and the same (already imported) key: the floor, and
//  - express-oauth2-jwt-bearer's `auth()` middleware (strict RFC 9068 mode) on the same token: the peer.
// The token is a real RS256 `at+jwt` client-credentials token from the sample IdP. Middlewares are
// called directly with minimal req/res objects (no HTTP, no Express router), so the figures are the
// cost of token validation itself. Goal: requireAccessToken ≥ 0.9× raw jose, and faster than the peer.
//
// Standalone: node --conditions=@gatehouse/source --import tsx test/bench/api-auth.ts (BENCH_SECONDS=2)
import { pathToFileURL } from 'node:url';
import { startApiTokenSource } from '@gatehouse/testing';
import type { NextFunction, Request, Response } from 'express';
import { decodeProtectedHeader, importJWK, type JWTVerifyOptions, jwtVerify } from 'jose';
// Relative: the root package.json (not ours) lists only @gatehouse/testing among workspace packages.
import { createAccessTokenValidator, requireAccessToken } from '../../packages/api-auth/src/index.js';
import { type BenchRow, measureCalls, printTable } from './harness.js';

const AUDIENCE = 'urn:gatehouse:sample-api';
type Middleware = (req: Request, res: Response, next: NextFunction) => unknown;

/** Calls a middleware with fresh minimal objects and resolves when it calls next() without an error. */
function runner(middleware: Middleware, token: string): () => Promise<Request> {
  const res = {} as Response;
  return () =>
    new Promise<Request>((resolve, reject) => {
      const headers: Record<string, string> = { authorization: `Bearer ${token}`, host: '127.0.0.1:4001' };
      const req = {
        headers,
        method: 'GET',
        url: '/api/whoami',
        originalUrl: '/api/whoami',
        protocol: 'http',
        query: {},
        body: undefined,
        socket: { remoteAddress: '127.0.0.1' },
        get: (name: string) => headers[name.toLowerCase()],
        is: () => false,
      } as unknown as Request;
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

    // The machine is shared (load drifts during a run), so: measure in short interleaved rounds,
    // rotating the order, keep each contender's median; and also report calls per CPU-second of this
    // process (all threads, so WebCrypto's thread pool counts), which other processes cannot skew.
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
    const rounds = Number(process.env.BENCH_ROUNDS ?? 7);
    const perRound = Math.max(0.3, seconds / rounds);
    const wallRates = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
    const cpuRates = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < contenders.length; i++) {
        const contender = contenders[(i + round) % contenders.length]!;
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        const rate = await measureCalls(contender.fn, perRound);
        const wallSeconds = (performance.now() - t0) / 1000;
        const cpu = process.cpuUsage(cpu0);
        // measureCalls warms up for 0.2 s before timing; that CPU is in `cpu` for every contender alike.
        const calls = rate * Math.max(wallSeconds - 0.2, perRound);
        wallRates.get(contender.name)!.push(rate);
        cpuRates.get(contender.name)!.push(calls / ((cpu.user + cpu.system) / 1e6));
      }
    }
    const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;
    const table = (rates: Map<string, number[]>): BenchRow[] =>
      contenders.map((c) => ({ name: c.name, opsPerSec: median(rates.get(c.name)!), note: c.note }));
    const wallRows = table(wallRates);
    const cpuRows = table(cpuRates);
    printTable(
      `api-auth: RS256 at+jwt validations per wall-clock second (median of ${rounds} interleaved rounds × ${perRound.toFixed(1)} s)`,
      wallRows,
      'jose.jwtVerify',
    );
    printTable(
      'api-auth: the same runs as validations per CPU-second of this process (robust to other load)',
      cpuRows,
      'jose.jwtVerify',
    );
    for (const [label, rows] of [
      ['wall', wallRows],
      ['cpu', cpuRows],
    ] as const) {
      const rate = (name: string) => rows.find((row) => row.name === name)!.opsPerSec;
      console.log(
        `${label}: requireAccessToken = ${(rate('requireAccessToken') / rate('jose.jwtVerify')).toFixed(2)}× raw jose (goal ≥ 0.90), ` +
          `${(rate('requireAccessToken') / rate('express-oauth2-jwt-bearer')).toFixed(2)}× express-oauth2-jwt-bearer (goal > 1)`,
      );
    }
  } finally {
    await source.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
