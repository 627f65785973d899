// @gatehouse/token-manager benchmarks.
// 1. getAccessToken on a warm cache, against the floor of a plain Map lookup (same run, interleaved
//    rounds, medians), so the figure says what the manager's bookkeeping costs per call.
// 2. Token requests saved under concurrency: 1000 concurrent callers on a cold cache, with the
//    manager (single-flight; also 4 managers sharing Redis) and with a naive cache that checks a Map
//    and requests on a miss. A local token endpoint counts the requests.
// Run: node --conditions=@gatehouse/source --import tsx test/bench/token-manager.ts (BENCH_SECONDS).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { isRedisAvailable, redisUrl, uniqueRedisPrefix } from '@gatehouse/testing';
import { createTokenManager } from '@gatehouse/token-manager';
import { createClient, type RedisClientType } from 'redis';
import { type BenchRow, measureCalls, printTable } from './harness.js';

const CALLERS = 1000;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** A token endpoint that counts requests and answers after `latencyMs`, like a real IdP would. */
async function startTokenEndpoint(latencyMs: number) {
  let requests = 0;
  let n = 0;
  const server = createServer((req, res) => {
    requests++;
    req.resume();
    req.on('end', () => {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(JSON.stringify({ access_token: `token-${++n}`, token_type: 'Bearer', expires_in: 300 }));
      }, latencyMs);
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  return {
    url,
    take: () => {
      const seen = requests;
      requests = 0;
      return seen;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export async function main(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 3);
  const rounds = 3;
  const perRound = seconds / rounds;
  const endpoint = await startTokenEndpoint(5);
  const client = {
    tokenEndpoint: endpoint.url,
    clientId: 'bench',
    clientSecret: 'bench-secret',
    scope: 'api.reports',
  };
  try {
    // --- 1. warm cache ---------------------------------------------------------------------
    const tokens = createTokenManager({ clients: { api: client } });
    const map = new Map<string, { accessToken: string; expiresAt: number }>([
      [
        'api',
        await tokens
          .getAccessToken('api')
          .then((t) => ({ accessToken: t.accessToken, expiresAt: t.expiresAt.getTime() })),
      ],
    ]);
    // The floor does what any cache must: a lookup and an expiry check, behind an async call.
    const floor = async () => {
      const entry = map.get('api');
      return entry && entry.expiresAt > Date.now() ? entry.accessToken : undefined;
    };
    const scoped = { scope: 'api.reports' };
    const rates: Record<string, number[]> = { floor: [], warm: [], warmScoped: [] };
    for (let round = 0; round < rounds; round++) {
      rates.floor!.push(await measureCalls(floor, perRound));
      rates.warm!.push(await measureCalls(() => tokens.getAccessToken('api'), perRound));
      rates.warmScoped!.push(await measureCalls(() => tokens.getAccessToken('api', scoped), perRound));
    }
    printTable(
      `token-manager: calls per second on a warm cache (median of ${rounds} interleaved rounds × ${perRound.toFixed(1)} s)`,
      [
        { name: 'Map lookup (floor)', opsPerSec: median(rates.floor!) },
        { name: 'getAccessToken (warm)', opsPerSec: median(rates.warm!), note: 'client default scope' },
        {
          name: 'getAccessToken (warm, scope given)',
          opsPerSec: median(rates.warmScoped!),
          note: 'scope string per call (memoised key)',
        },
      ],
      'Map lookup (floor)',
    );

    // --- 2. concurrency --------------------------------------------------------------------
    endpoint.take();
    const rows: BenchRow[] = [];
    const time = async (fn: () => Promise<unknown>) => {
      const started = performance.now();
      await fn();
      return CALLERS / ((performance.now() - started) / 1000);
    };

    // Naive: check a Map, POST to the token endpoint on a miss (a hand-rolled cache without
    // single-flight): every caller that arrives before the first answer makes its own request.
    const naiveCache = new Map<string, string>();
    const basic = `Basic ${Buffer.from('bench:bench-secret').toString('base64')}`;
    const naiveRate = await time(() =>
      Promise.all(
        Array.from({ length: CALLERS }, async () => {
          const hit = naiveCache.get('api');
          if (hit) return hit;
          const response = await fetch(endpoint.url, {
            method: 'POST',
            headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
            body: 'grant_type=client_credentials&scope=api.reports',
          });
          const { access_token } = (await response.json()) as { access_token: string };
          naiveCache.set('api', access_token);
          return access_token;
        }),
      ),
    );
    const naiveRequests = endpoint.take();
    rows.push({
      name: 'no single-flight',
      opsPerSec: naiveRate,
      note: `${naiveRequests} token requests for ${CALLERS} callers`,
    });

    const single = createTokenManager({ clients: { api: client } });
    const singleRate = await time(() =>
      Promise.all(Array.from({ length: CALLERS }, () => single.getAccessToken('api'))),
    );
    const singleRequests = endpoint.take();
    rows.push({
      name: 'single-flight',
      opsPerSec: singleRate,
      note: `${singleRequests} token request(s) for ${CALLERS} callers`,
    });

    if (await isRedisAvailable()) {
      const prefix = uniqueRedisPrefix('bench-token-manager');
      const redisClients: RedisClientType[] = [];
      try {
        const managers = await Promise.all(
          Array.from({ length: 4 }, async () => {
            const redis: RedisClientType = createClient({ url: redisUrl, disableOfflineQueue: true });
            redis.on('error', () => {});
            await redis.connect();
            redisClients.push(redis);
            return createTokenManager({
              clients: { api: client },
              sharedCache: {
                redis,
                keyPrefix: prefix,
                encryptionSecret: 'bench-secret-with-at-least-32-characters',
              },
            });
          }),
        );
        const sharedRate = await time(() =>
          Promise.all(
            Array.from({ length: CALLERS }, (_, i) => managers[i % managers.length]!.getAccessToken('api')),
          ),
        );
        const sharedRequests = endpoint.take();
        rows.push({
          name: 'single-flight, 4 managers on Redis',
          opsPerSec: sharedRate,
          note: `${sharedRequests} token request(s) for ${CALLERS} callers`,
        });
        const keys = await redisClients[0]!.keys(`${prefix}*`);
        if (keys.length > 0) await redisClients[0]!.del(keys);
      } finally {
        for (const redis of redisClients) await redis.close().catch(() => {});
      }
    } else {
      console.warn('(no Redis: the shared-cache row is skipped)');
    }
    printTable(
      `token-manager: ${CALLERS} concurrent callers on a cold cache, token endpoint answering in 5 ms (callers served per second)`,
      rows,
      'no single-flight',
    );
    console.log(
      `token requests: ${naiveRequests} without single-flight, ${singleRequests} with it (${(naiveRequests / Math.max(singleRequests, 1)).toFixed(0)}× fewer)`,
    );
  } finally {
    await endpoint.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
