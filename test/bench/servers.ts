// The servers the proxy benchmarks share: the tiny upstream, the two bare proxies (Node's floor for the
// job: a keep-alive client, a fixed token, nothing else) and the sample IdP in a child process.
import { spawn } from 'node:child_process';
import { createServer, Agent as HttpAgent, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClientMetadata } from '@gatehouse/sample-idp';
import type { startIdp } from '@gatehouse/testing';
import { Pool } from 'undici';

export interface Listening {
  url: string;
  close(): Promise<void>;
}

export async function listen(server: Server, port = 0): Promise<Listening> {
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The upstream: a small JSON answer, like a typical API read. */
export function startUpstream(): Promise<Listening> {
  const body = JSON.stringify({ items: [{ id: 1, title: 'bench' }], authorized: true });
  return listen(
    createServer((req, res) => {
      res.writeHead(req.headers.authorization ? 200 : 401, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
    }),
  );
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'cookie',
  'host',
]);

/** The request headers a minimal proxy sends: hop-by-hop and Cookie dropped, the fixed token set. */
function bareHeaders(headers: IncomingHttpHeaders, host: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  out.host = host;
  out.authorization = 'Bearer fixed-token';
  return out;
}

/** The floor: node:http server + http.request on a keep-alive Agent, a fixed token, streaming both ways. */
export function startBareNodeProxy(upstream: string): Promise<Listening> {
  const target = new URL(upstream);
  const agent = new HttpAgent({ keepAlive: true });
  return listen(
    createServer((req, res) => {
      const out = request(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: bareHeaders(req.headers, target.host),
          agent,
        },
        (up) => {
          const headers: Record<string, string | string[]> = {};
          for (const name in up.headers) {
            const value = up.headers[name];
            if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
          }
          res.writeHead(up.statusCode ?? 502, headers);
          up.pipe(res);
        },
      );
      out.on('error', () => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
      req.pipe(out);
    }),
  );
}

/** The same bare proxy on an undici Pool (what the BFF forwards with): the client comparison. */
export function startBareUndiciProxy(upstream: string): Promise<Listening> {
  const target = new URL(upstream);
  const pool = new Pool(target.origin);
  return listen(
    createServer((req, res) => {
      const hasBody =
        req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
      pool.stream(
        {
          path: req.url ?? '/',
          method: (req.method ?? 'GET') as 'GET',
          headers: bareHeaders(req.headers, target.host),
          body: hasBody ? req : null,
        },
        ({ statusCode, headers }) => {
          const out: Record<string, string | string[]> = {};
          for (const name in headers) {
            const value = headers[name];
            if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
          }
          res.writeHead(statusCode, out);
          return res;
        },
        (err) => {
          if (!err) return;
          if (!res.headersSent) res.writeHead(502);
          res.end();
        },
      );
    }),
  ).then((listening) => ({
    ...listening,
    close: async () => {
      await listening.close();
      await pool.close();
    },
  }));
}

/** The sample IdP in a child process (see idp-process.ts): only its issuer URL is needed here. */
/**
 * One more BFF client for the sample IdP (`extraClients`): a second BFF in the same bench run (another
 * store, DPoP) needs its own redirect URI, so its own registration with the sample BFF's settings.
 */
export function extraBffClient(clientId: string, port: number): ClientMetadata {
  return {
    client_id: clientId,
    client_secret: 'bff-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [`http://127.0.0.1:${port}/bff/callback`],
    scope: 'openid profile offline_access api',
  };
}

export async function startIdpProcess(options: Parameters<typeof startIdp>[0]): Promise<RemoteIdp> {
  const child = spawn(
    process.execPath,
    [
      '--conditions=@gatehouse/source',
      '--import',
      'tsx',
      join(dirname(fileURLToPath(import.meta.url)), 'idp-process.ts'),
      JSON.stringify(options),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const issuer = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text: string) => {
      out += text;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve((JSON.parse(line) as { issuer: string }).issuer);
    });
    child.once('exit', (code) => reject(new Error(`IdP process exited with ${code}`)));
  });
  return {
    issuer,
    close: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

export interface RemoteIdp {
  readonly issuer: string;
  close(): Promise<void>;
}
