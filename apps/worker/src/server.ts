// Runs the sample worker from the environment (see README): logs one pino line per API call and
// stops cleanly on SIGINT/SIGTERM (no timers or sockets left behind).
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { PrivateJwk } from '@gatehouse/token-manager';
import { pino } from 'pino';
import { createClient, type RedisClientType } from 'redis';
import { createWorker } from './app.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
/** Development-only cache secret, so that two sample workers share tokens without setup. */
const DEV_CACHE_SECRET = 'gatehouse-sample-worker-development-cache-secret';

function seconds(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    throw new TypeError(`${name} must be a positive number of seconds, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function flag(name: string, fallback: boolean): boolean {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new TypeError(`${name} must be true or false, got ${JSON.stringify(raw)}`);
}

/** The Redis URL without its password, for a log line. */
function redactUrl(raw: string): string {
  try {
    const url = new URL(raw);
    if (url.password) url.password = '***';
    return url.href;
  } catch {
    return '(invalid REDIS_URL)';
  }
}

async function main(): Promise<void> {
  const env = process.env;
  const logger = pino({ name: 'worker', level: env.LOG_LEVEL ?? 'info' });
  const auth = env.WORKER_CLIENT_AUTH ?? 'client_secret_basic';
  if (auth !== 'client_secret_basic' && auth !== 'private_key_jwt') {
    throw new TypeError('WORKER_CLIENT_AUTH must be client_secret_basic or private_key_jwt');
  }
  let privateKey: PrivateJwk | undefined;
  if (auth === 'private_key_jwt') {
    // The sample IdP writes this key pair on first start (and registers its public half).
    const file = resolve(
      env.WORKER_KEY_FILE ?? join(env.DATA_DIR ?? join(repoRoot, '.data'), 'worker-jwt-key.json'),
    );
    privateKey = JSON.parse(await readFile(file, 'utf8')) as PrivateJwk;
  }

  let redis: RedisClientType | undefined;
  if (env.REDIS_URL) {
    // No offline queue and a bounded reconnect: while Redis is down, commands fail at once and the
    // worker carries on with its own cache instead of waiting.
    redis = createClient({
      url: env.REDIS_URL,
      disableOfflineQueue: true,
      // See the sample BFF host: a reset during the reconnect handshake must not leave the client wedged.
      disableClientInfo: true,
      socket: {
        connectTimeout: 1000,
        reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 5000),
      },
    });
    redis.on('error', (error: Error) => logger.debug({ err: error.message }, 'redis error'));
    // Wait briefly for the first connection (so the first call can use the shared cache), never
    // longer: an unreachable Redis must not stop the worker from working.
    const connected = redis.connect().then(
      () => true,
      () => false,
    );
    if (!(await Promise.race([connected, delay(2000, false, { ref: false })]))) {
      logger.warn(
        { redis: redactUrl(env.REDIS_URL) },
        'redis not reachable yet, using the local cache meanwhile',
      );
    }
    if (!env.TOKEN_CACHE_SECRET) logger.warn('TOKEN_CACHE_SECRET is not set: using the development secret');
  }

  const worker = createWorker({
    issuer: env.ISSUER ?? 'http://127.0.0.1:4000',
    apiUrl: env.API_URL ?? 'http://127.0.0.1:4001',
    clientId: env.WORKER_CLIENT_ID ?? (auth === 'private_key_jwt' ? 'worker-jwt' : 'worker'),
    ...(privateKey ? { privateKey } : { clientSecret: env.WORKER_CLIENT_SECRET || 'worker-secret' }),
    scope: env.WORKER_SCOPE ?? 'api.reports',
    // `npm start` sets WORKER_DPOP=true (the sample API's report endpoint then requires DPoP).
    dpop: flag('WORKER_DPOP', false),
    interval: seconds('WORKER_INTERVAL', 5),
    ...(env.TOKEN_RENEWAL_MARGIN ? { renewalMargin: seconds('TOKEN_RENEWAL_MARGIN', 60) } : {}),
    ...(redis ? { redis, cacheSecret: env.TOKEN_CACHE_SECRET || DEV_CACHE_SECRET } : {}),
    logger,
  });
  worker.start();

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    await worker.stop();
    if (redis?.isOpen) await redis.close().catch(() => redis?.destroy());
    // Node's fetch keeps idle keep-alive connections to the IdP and the API, which hold the process
    // open until the servers time them out. Close its global dispatcher (undici publishes it under
    // this symbol) so the process exits now.
    const dispatcher = (globalThis as Record<symbol, { close?: () => Promise<void> } | undefined>)[
      Symbol.for('undici.globalDispatcher.1')
    ];
    await dispatcher?.close?.().catch(() => {});
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
