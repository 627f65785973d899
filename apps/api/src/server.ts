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

function envFlag(name: string, fallback: boolean): boolean {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new TypeError(`${name} must be true or false, got ${JSON.stringify(raw)}`);
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

// The URL callers use for this API: DPoP proofs name it in `htu`. The launcher sets API_URL for the
// worker and the BFF too, so all three agree; a request's Host header never decides it.
const publicUrl = env.API_URL || `http://${host}:${port}`;
const requireDPoP = envFlag('API_REQUIRE_DPOP', false);
const todosDPoP = env.API_TODOS_DPOP || undefined;
if (todosDPoP !== undefined && !['required', 'allowed', 'disabled'].includes(todosDPoP)) {
  throw new TypeError(
    `API_TODOS_DPOP must be required, allowed or disabled, got ${JSON.stringify(todosDPoP)}`,
  );
}

const app = createApp({
  issuer,
  audience: env.API_AUDIENCE || SAMPLE_API_AUDIENCE,
  introspection: { clientId: env.API_CLIENT_ID || 'api', clientSecret },
  publicUrl,
  requireDPoP,
  todosDPoP: todosDPoP as 'required' | 'allowed' | 'disabled' | undefined,
  dpopNonce: envFlag('API_DPOP_NONCE', false),
  logger,
});
const server = createServer(app);
server.listen(port, host, () => {
  logger.info(
    { url: `http://${host}:${port}`, issuer, publicUrl, reportsDPoP: requireDPoP ? 'required' : 'allowed' },
    'sample API listening',
  );
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    logger.info({ signal }, 'shutting down');
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
