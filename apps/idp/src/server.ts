// Starts the sample IdP: reads the environment (see README), listens, logs with pino.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JWK } from 'jose';
import { pino } from 'pino';
import { createIdp, generateSigningJwk, publicJwk } from './app.js';
import { envBool, envInt, envJson } from './lib/env.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** Where the sample worker finds its private_key_jwt key (a private JWK, JSON). */
export const WORKER_KEY_FILE = 'worker-jwt-key.json';

async function loadOrCreateWorkerKey(dataDir: string): Promise<JWK> {
  const file = join(dataDir, WORKER_KEY_FILE);
  try {
    return JSON.parse(await readFile(file, 'utf8')) as JWK;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const key = await generateSigningJwk('ES256');
  await mkdir(dataDir, { recursive: true });
  await writeFile(file, `${JSON.stringify(key, null, 2)}\n`, { mode: 0o600 });
  return key;
}

async function main(): Promise<void> {
  const env = process.env;
  const logger = pino({ name: 'idp', level: env.LOG_LEVEL ?? 'info' });
  const port = envInt(env, 'IDP_PORT') ?? (env.ISSUER ? Number(new URL(env.ISSUER).port) || 80 : 4000);
  const host = env.IDP_HOST ?? '127.0.0.1';
  const issuer = env.ISSUER ?? `http://127.0.0.1:${port}`;
  const dataDir = resolve(env.DATA_DIR ?? join(repoRoot, '.data'));
  // Opt-in: grants, sessions and tokens survive a restart (and a SIGKILL) only with IDP_DATA_DIR.
  const idpDataDir = env.IDP_DATA_DIR ? resolve(env.IDP_DATA_DIR) : undefined;
  const signingKeys = envJson<{ keys: JWK[] }>(env, 'IDP_SIGNING_KEYS');
  const workerJwks = envJson<{ keys: JWK[] }>(env, 'WORKER_JWKS') ?? {
    keys: [publicJwk(await loadOrCreateWorkerKey(dataDir))],
  };

  const idp = await createIdp({
    issuer,
    bffBaseUrl: env.BFF_BASE_URL ?? 'http://localhost:3000',
    clientSecrets: {
      bff: env.BFF_CLIENT_SECRET || undefined,
      worker: env.WORKER_CLIENT_SECRET || undefined,
      api: env.API_CLIENT_SECRET || undefined,
    },
    workerJwks,
    accessTokenTtl: envInt(env, 'ACCESS_TOKEN_TTL'),
    refreshTokenTtl: envInt(env, 'REFRESH_TOKEN_TTL'),
    idTokenTtl: envInt(env, 'ID_TOKEN_TTL'),
    sessionTtl: envInt(env, 'IDP_SESSION_TTL'),
    rotateRefreshTokens: envBool(env, 'ROTATE_REFRESH_TOKENS'),
    accessTokenFormat: (env.ACCESS_TOKEN_FORMAT as 'jwt' | 'opaque' | undefined) || undefined,
    requirePushedAuthorizationRequests: envBool(env, 'IDP_REQUIRE_PAR'),
    requireDpopNonce: envBool(env, 'IDP_DPOP_NONCE'),
    // IDP_DATA_DIR keeps the signing keys next to the store it belongs to.
    ...(signingKeys ? { signingKeys } : idpDataDir ? {} : { keysDir: dataDir }),
    dataDir: idpDataDir,
    logger,
  });

  const server = createServer(idp.handler);
  server.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EADDRINUSE') {
      logger.error(
        `port ${port} on ${host} is taken: stop the other process or set IDP_PORT (and ISSUER) to a free port`,
      );
    } else {
      logger.error({ err: error.message }, 'server error');
    }
    process.exit(1);
  });
  server.listen(port, host, () => {
    logger.info(
      {
        issuer,
        bff: idp.config.bffBaseUrl,
        accessTokenTtl: idp.config.accessTokenTtl,
        dataDir,
        persistentStore: idpDataDir ?? false,
      },
      `sample IdP listening on http://${host}:${port} — sign in as alice/alice or bob/bob`,
    );
  });

  const stop = (signal: string) => {
    logger.info({ signal }, 'stopping');
    idp.close();
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

main().catch((error: unknown) => {
  console.error(`idp: ${(error as Error).message}`);
  process.exit(1);
});
