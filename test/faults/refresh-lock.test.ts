// R8 with real processes: two sample BFF hosts share one Redis, their users' calls alternate between
// them, and the IdP's token endpoint becomes slow (a loopback front holds each token request before
// passing it on). With rotating refresh tokens a second use of a refresh token revokes the grant, so
// the BFFs together must present each refresh token exactly once, however long the IdP takes.
import { getFreePort } from '@gatehouse/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Front, startFront } from './support/front.js';
import { signIn, type VirtualUser } from './support/load.js';
import {
  type RedisProcess,
  requireRedisServer,
  startRedisServer,
  stopAllChildren,
  tempDir,
} from './support/processes.js';
import { Findings, IDP_UNAVAILABLE, lostSessions, runScenario } from './support/scenario.js';
import {
  type AppHandle,
  recentWarnings,
  startApiProcess,
  startBffProcess,
  startIdpProcess,
} from './support/stack.js';

const ready = requireRedisServer('fault injection: slow token endpoint with two BFF instances');

/**
 * How long the front holds each token request: longer than the refresh lock's TTL (the BFF's lock
 * lives min(10, httpTimeout) s and must be renewed while the refresh runs) and longer than the 10 s
 * the BFF lets a request wait for a refresh, but shorter than one refresh attempt may take
 * (3 × httpTimeout), so the held refresh does come back and is used.
 */
const TOKEN_DELAY_MS = Number(process.env.FAULTS_TOKEN_DELAY ?? 12) * 1000;
/**
 * Access-token lifetime: refreshed at half of it, so a refresh held TOKEN_DELAY_MS still comes back
 * before the token expires (a token endpoint slower than the token's life could serve no one).
 */
const TTL = Math.ceil((2 * (TOKEN_DELAY_MS + 2000)) / 1000);
/** How long the token endpoint stays slow: every session's first refresh is due inside it. */
const SLOW_MS = 8_000;

describe.skipIf(!ready).sequential('fault injection: slow token endpoint, two BFF instances', () => {
  let redis: RedisProcess | undefined;
  let front: Front | undefined;
  const apps: AppHandle[] = [];
  let dataDir: Awaited<ReturnType<typeof tempDir>> | undefined;
  let origins: string[] = [];

  beforeAll(async () => {
    const [redisPort, idpPort, apiPort, bffA, bffB] = await Promise.all(
      Array.from({ length: 5 }, () => getFreePort()),
    );
    dataDir = await tempDir('idp-lock');
    redis = await startRedisServer(redisPort!);
    front = await startFront(idpPort!);
    // The issuer is the front's address: the BFFs (and the API, for its JWKS) reach the IdP only
    // through it, and so does the browser's sign-in.
    const baseUrl = `http://localhost:${bffA}`;
    apps.push(
      await startIdpProcess({
        port: idpPort!,
        issuer: front.url,
        bffBaseUrl: baseUrl,
        accessTokenTtl: TTL,
        dataDir: dataDir.path,
      }),
    );
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    apps.push(
      ...(await Promise.all([
        startApiProcess(apiPort!, front.url),
        ...[bffA!, bffB!].map((port) =>
          startBffProcess({
            port,
            baseUrl,
            issuer: front!.url,
            apiUrl,
            redisUrl: redis!.url,
            redisPrefix: 'gatehouse-faults:lock:',
          }),
        ),
      ])),
    );
    origins = [`http://localhost:${bffA}`, `http://localhost:${bffB}`];
  });

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.stop()));
    await stopAllChildren();
    await front?.close();
    await redis?.close();
    await dataDir?.remove();
  });

  it(`R2 R8: token endpoint held ${TOKEN_DELAY_MS / 1000} s with two BFF instances → each refresh token is presented exactly once, no 401/500, no session lost`, async () => {
    const signedInAt = Date.now();
    const users: VirtualUser[] = await Promise.all(
      Array.from({ length: 4 }, (_, i) => signIn(`u${i}`, i % 2 === 0 ? 'alice' : 'bob', origins)),
    );
    const run = await runScenario({
      title: `token endpoint held ${TOKEN_DELAY_MS / 1000} s for ${SLOW_MS / 1000} s (tokens of ${TTL} s), calls alternating between two BFF instances: statuses per second`,
      users,
      // Slow from 2 s before the first session's refresh is due (at half the token's lifetime).
      warmup: () => new Promise((r) => setTimeout(r, signedInAt + (TTL / 2 - 2) * 1000 - Date.now())),
      inject: async () => {
        front!.delayMs = TOKEN_DELAY_MS;
        await new Promise((r) => setTimeout(r, SLOW_MS));
        front!.delayMs = 0;
      },
      // The last held request comes back TOKEN_DELAY_MS after the slow period.
      recoveryMs: TOKEN_DELAY_MS + 2500,
    });
    const refreshes = front!.tokenRequests.filter((r) => r.grantType === 'refresh_token');
    const held = refreshes.filter((r) => r.heldMs > 0);
    const uses = new Map<string, number>();
    for (const r of refreshes) uses.set(r.refreshTokenHash!, (uses.get(r.refreshTokenHash!) ?? 0) + 1);
    const reused = [...uses].filter(([, n]) => n > 1);
    console.log(
      `token endpoint: ${refreshes.length} refresh requests (${held.length} held ${TOKEN_DELAY_MS / 1000} s), ` +
        `${uses.size} distinct refresh tokens, ${reused.length} presented more than once` +
        (reused.length > 0 ? ` (${reused.map(([, n]) => `${n}×`).join(', ')})` : ''),
    );
    const findings = new Findings()
      .add(
        reused.length > 0
          ? `${reused.length} refresh tokens presented more than once: ${reused.map(([hash, n]) => `${hash}… ×${n}`).join(', ')}`
          : undefined,
      )
      .add(
        held.length < users.length
          ? `only ${held.length} refresh requests reached the slow token endpoint (expected ≥ ${users.length})`
          : undefined,
      )
      .none(run.load.samples, [401, 500], 'during the whole run')
      .only(run.during, [IDP_UNAVAILABLE], 'while the token endpoint was slow')
      .allOk(run.after(TOKEN_DELAY_MS + 2000), 'once the last held refresh had come back')
      .add(await lostSessions(users));
    if (findings.problems.length > 0) {
      console.log(`what the apps logged (warnings and errors, latest last):\n${recentWarnings(apps)}`);
    }
    expect(findings.problems).toEqual([]);
  });
});
