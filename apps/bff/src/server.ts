// Runs the sample BFF host on http://localhost:3000 (see README for the environment variables).
import { createServer } from 'node:http';
import pino from 'pino';
import { createClient } from 'redis';
import { createApp, DEV_SESSION_SECRET } from './app.js';

const logger = pino({
  level: process.env.LOG_LEVEL ?? 'info',
  // Belt and braces: nothing secret should ever reach a log call, but if a header object does, redact it.
  redact: ['req.headers.cookie', 'req.headers.authorization', 'headers.cookie', 'headers.authorization'],
});

const port = Number(process.env.BFF_PORT ?? 3000);
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
  redis = createClient({ url: process.env.REDIS_URL });
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
  app(req, res);
});
app.bff.attach(server);
server.listen(port, host, () => logger.info({ url: baseUrl }, 'sample BFF listening'));

const shutdown = () => {
  server.close();
  server.closeAllConnections();
  void app.close();
  void redis?.close();
};
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
