// A scratch Express host that uses the three published Gatehouse packages the way their READMEs
// show: @gatehouse/bff in front, @gatehouse/token-manager for the BFF's own client-credentials
// calls, @gatehouse/api-auth guarding a small API. The package smoke test (scripts/smoke/run.ts)
// installs the packed tarballs into a folder outside the workspace, type-checks this file strictly
// and signs in through it against the sample IdP.
import type { Server } from 'node:http';
import { requireAccessToken, requireClient, requireScope, requireUser } from '@gatehouse/api-auth';
import { createBff, createRedisStore } from '@gatehouse/bff';
import { createTokenManager } from '@gatehouse/token-manager';
import express from 'express';
import { createClient } from 'redis';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`smoke app: ${name} is required`);
  return value;
}

const issuer = required('ISSUER');
const port = Number(required('PORT'));
const apiPort = Number(required('API_PORT'));
const clientSecret = required('BFF_CLIENT_SECRET');
const audience = 'urn:gatehouse:sample-api';

// The API: user tokens on /api/me, client-credentials tokens on /api/reports.
const api = express();
api.use('/api', requireAccessToken({ issuer, audience }));
api.get('/api/me', requireUser(), requireScope('api'), (req, res) => {
  res.json({ sub: req.auth?.claims.sub });
});
api.get('/api/reports', requireClient(), requireScope('api.reports'), (req, res) => {
  res.json({ client: req.auth?.claims.client_id });
});

// The BFF's own machine calls get their tokens from the token manager.
const tokens = createTokenManager({
  clients: { bff: { issuer, clientId: 'bff', clientSecret, scope: 'api.reports' } },
});

// disableClientInfo: see @gatehouse/bff's README (a reset during a reconnect must not wedge the client).
const redis = createClient({ url: required('REDIS_URL'), disableClientInfo: true });
redis.on('error', () => {});
await redis.connect();

const bff = createBff({
  issuer,
  clientId: 'bff',
  clientSecret,
  baseUrl: `http://localhost:${port}`,
  sessionSecret: required('SESSION_SECRET'),
  scopes: ['openid', 'profile', 'email', 'offline_access'],
  apiScopes: ['api'],
  store: createRedisStore({ client: redis, prefix: required('REDIS_PREFIX') }),
  remoteApis: [
    { prefix: '/api/me', upstream: `http://127.0.0.1:${apiPort}/api/me`, token: 'user' },
    { prefix: '/api/reports', upstream: `http://127.0.0.1:${apiPort}/api/reports`, token: 'client' },
  ],
  getClientAccessToken: async () => (await tokens.getAccessToken('bff')).accessToken,
});

const app = express();
app.get('/health', (_req, res) => {
  res.json({ status: 'ok' });
});
app.use(bff.router);
app.get('/local/whoami', bff.localApi(), async (req, res) => {
  const accessToken = await req.bff?.getAccessToken();
  res.json({ sub: req.bff?.user?.sub, hasAccessToken: typeof accessToken === 'string' });
});
app.use(bff.errorHandler);

await bff.ready();
const listen = (handler: express.Express, at: number): Promise<Server> =>
  new Promise((resolve) => {
    const server = handler.listen(at, '127.0.0.1', () => resolve(server));
  });
const apiServer = await listen(api, apiPort);
const server = await listen(app, port);
bff.attach(server);
console.log(`smoke app listening on http://localhost:${port}`);

process.once('SIGTERM', () => {
  server.close();
  apiServer.close();
  server.closeAllConnections();
  apiServer.closeAllConnections();
  void bff.close().then(() => redis.close());
});
