// Starts the sample API: reads the environment (see README), listens, logs with pino.
import { createServer } from 'node:http';
import { pino } from 'pino';
import { createApp, SAMPLE_API_AUDIENCE } from './app.js';

function envPort(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 65_535) {
    throw new TypeError(`${name} must be a TCP port number, got ${JSON.stringify(raw)}`);
  }
  return value;
}

const env = process.env;
const logger = pino({
  name: 'api',
  level: env.LOG_LEVEL ?? 'info',
  // Belt and braces: nothing here logs headers, but if someone adds it, Authorization stays out.
  redact: [
    'authorization',
    '*.authorization',
    'headers.authorization',
    'req.headers.authorization',
    '*.cookie',
  ],
});
const port = envPort('API_PORT', 4001);
const host = env.API_HOST ?? '127.0.0.1';
const issuer = env.ISSUER ?? 'http://127.0.0.1:4000';
const clientSecret = env.API_CLIENT_SECRET || 'api-secret';

const app = createApp({
  issuer,
  audience: env.API_AUDIENCE || SAMPLE_API_AUDIENCE,
  introspection: { clientId: env.API_CLIENT_ID || 'api', clientSecret },
  logger,
});
const server = createServer(app);
server.listen(port, host, () => {
  logger.info({ url: `http://${host}:${port}`, issuer }, 'sample API listening');
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    logger.info({ signal }, 'shutting down');
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
