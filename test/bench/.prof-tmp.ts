// Profiling harness: upstream + createBff in one process, logged in, then waits for the driver.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createBff, createRedisStore } from '@gatehouse/bff';
import { connectTestRedis, getFreePort, startIdp, TestBrowser, uniqueRedisPrefix } from '@gatehouse/testing';
import express from 'express';

const body = JSON.stringify({ items: [{ id: 1, title: 'bench' }], authorized: true });
const up = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});
await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
const upUrl = `http://127.0.0.1:${(up.address() as AddressInfo).port}`;
const port = Number(process.env.PORT ?? (await getFreePort()));
const baseUrl = `http://127.0.0.1:${port}`;
const idp = await startIdp({ bffBaseUrl: baseUrl });
const store = process.env.REDIS
  ? createRedisStore({ client: await connectTestRedis(), prefix: uniqueRedisPrefix('prof') })
  : undefined;
const bff = createBff({
  issuer: idp.issuer,
  clientId: 'bff',
  clientSecret: 'bff-secret',
  baseUrl,
  sessionSecret: 'proxy-bench-session-secret-0123456789abcdef',
  apiScopes: ['api'],
  ...(store ? { store } : {}),
  remoteApis: [{ prefix: '/api', upstream: `${upUrl}/api`, rateLimit: { burst: 1e9, perSecond: 1e9 } }],
});
const app = express();
app.use(bff.router);
const server = createServer(app);
await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
const browser = new TestBrowser();
await browser.login(`${baseUrl}/bff/login`, { username: 'alice', password: 'alice' });
const cookie = await browser.jar.getCookieString(`${baseUrl}/api/data`);
console.log(JSON.stringify({ url: `${baseUrl}/api/data`, cookie }));
process.on('SIGINT', () => process.exit(0));
