// Runs the sample BFF host on http://localhost:3000 (see README for the environment variables).
import { createServer } from 'node:http';
import pino from 'pino';
import { createClient } from 'redis';
import {
  createApp,
  DEV_SESSION_SECRET,
  dpopFromEnv,
  pushedAuthorizationRequestsFromEnv,
  userClaimValuesFromEnv,
} from './app.js';

const logger = pino({
  level: process.env.LOG_LEVEL ?? 'info',
  // Belt and braces: nothing secret should ever reach a log call, but if a header object does, redact it.
  redact: ['req.headers.cookie', 'req.headers.authorization', 'headers.cookie', 'headers.authorization'],
});

const port = Number(process.env.BFF_PORT ?? 3000);
if (process.env.SHUTDOWN_TIMEOUT !== undefined && !(Number(process.env.SHUTDOWN_TIMEOUT) >= 0)) {
  throw new TypeError('SHUTDOWN_TIMEOUT must be a number of seconds ≥ 0 (e.g. 10)');
}
const host = process.env.BFF_HOST ?? 'localhost';
const baseUrl = process.env.BFF_BASE_URL ?? `http://localhost:${port}`;
const sessionSecrets = process.env.SESSION_SECRET?.split(',')
  .map((s) => s.trim())
  .filter(Boolean);

if (!sessionSecrets?.length) {
  logger.warn(
    '!!! SESSION_SECRET is not set: using the PUBLIC development default. Anyone can forge and decrypt ' +
      'sessions. Set SESSION_SECRET (openssl rand -base64 48) before this runs anywhere but your laptop. !!!',
  );
}

let redis: ReturnType<typeof createClient> | undefined;
if (process.env.REDIS_URL) {
  // disableClientInfo: node-redis 5 swallows a failed CLIENT SETINFO during a reconnect handshake and
  // marks the client ready on a dead socket, after which every command hangs until its timeout, for
  // good (seen when Redis was killed and the reconnect met its closing listen socket). Without those
  // handshake commands the connection is ready at once and a reset reconnects as it should.
  redis = createClient({ url: process.env.REDIS_URL, disableClientInfo: true });
  redis.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis connection problem'));
  await redis.connect();
  logger.info('sessions in Redis');
}

const app = createApp({
  baseUrl,
  issuer: process.env.ISSUER ?? 'http://127.0.0.1:4000',
  clientId: process.env.BFF_CLIENT_ID ?? 'bff',
  clientSecret: process.env.BFF_CLIENT_SECRET,
  sessionSecret: sessionSecrets?.length ? sessionSecrets : DEV_SESSION_SECRET,
  apiUrl: process.env.API_URL ?? 'http://127.0.0.1:4001',
  spaDir: process.env.SPA_DIR,
  redis,
  redisPrefix: process.env.REDIS_PREFIX,
  refreshMargin: process.env.REFRESH_MARGIN ? Number(process.env.REFRESH_MARGIN) : undefined,
  diagnostics: process.env.BFF_DIAGNOSTICS ? process.env.BFF_DIAGNOSTICS === 'true' : undefined,
  pushedAuthorizationRequests: pushedAuthorizationRequestsFromEnv(process.env.BFF_PAR),
  dpop: dpopFromEnv(process.env.BFF_DPOP),
  userClaimValues: userClaimValuesFromEnv(process.env.BFF_USER_CLAIM_VALUES),
  logger,
});

const server = createServer((req, res) => {
  const started = performance.now();
  // Path only: query strings carry codes and states. Read before Express's sub-routers rewrite req.url.
  const path = (req.url ?? '').split('?')[0];
  res.once('finish', () => {
    logger.info(
      {
        method: req.method,
        path,
        status: res.statusCode,
        ms: Math.round(performance.now() - started),
      },
      'request',
    );
  });
  // Remote-API calls are answered by the BFF before Express and the host's middleware run (the proxy
  // sets its own security headers); everything else goes to the Express app.
  if (!app.bff.handleRequest(req, res)) app(req, res);
});
app.bff.attach(server);
server.listen(port, host, () => logger.info({ url: baseUrl }, 'sample BFF listening'));

// Graceful shutdown: stop accepting connections, let the BFF finish what is under way (requests,
// proxied calls, token refreshes; new BFF requests on open keep-alive connections get 503
// ERR_BFF_SHUTTING_DOWN) for at most SHUTDOWN_TIMEOUT seconds, then drop what is left and exit.
const shutdownTimeout = Number(process.env.SHUTDOWN_TIMEOUT ?? 10);
let stopping = false;
const shutdown = async (signal: NodeJS.Signals) => {
  if (stopping) return;
  stopping = true;
  logger.info({ signal, timeout: shutdownTimeout }, 'shutting down: draining');
  server.close();
  server.closeIdleConnections();
  try {
    await app.bff.close({ timeout: shutdownTimeout });
  } catch (err) {
    logger.error({ err: err instanceof Error ? err.message : String(err) }, 'BFF close failed');
  }
  server.closeAllConnections();
  await redis?.close().catch(() => {});
  logger.info('stopped');
  // Nothing of ours is left running; a stray timer elsewhere must not keep a stopped server alive.
  setTimeout(() => process.exit(0), 1000).unref();
};
process.once('SIGINT', (signal) => void shutdown(signal));
process.once('SIGTERM', (signal) => void shutdown(signal));
