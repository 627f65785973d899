// A loopback HTTP proxy in front of the real sample IdP that can break one path at a time: hang
// before or after the headers, reset the connection, answer 5xx, HTML, JSON of the wrong shape, or a
// redirect. Everything not broken is passed through to the IdP unchanged, so the happy path runs
// against the real part. Requests are counted per path.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Fault =
  /** Pass through to the IdP. */
  | 'pass'
  /** Never answer (no status line). */
  | 'hang'
  /** 200 with JSON headers and half a body, then silence. */
  | 'stall-body'
  /** Destroy the connection as soon as the request arrives. */
  | 'reset'
  /** 500 with a JSON error. */
  | '500'
  /** 503 with an HTML error page. */
  | '503-html'
  /** 200 `text/html`. */
  | 'html'
  /** 200 JSON that is not what the endpoint should return. */
  | 'wrong-json'
  /** 302 to the IdP's own endpoint (a client must not follow it). */
  | 'redirect'
  /** Pass through after `slowMs`. */
  | 'slow';

export interface FaultProxy {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Fault per path (e.g. `/jwks`); paths not listed pass. */
  readonly faults: Map<string, Fault>;
  /** Delay of the `slow` fault, in milliseconds. */
  slowMs: number;
  /** Requests seen per path. */
  readonly counts: Map<string, number>;
  /** A fetch that sends every request for the IdP through this proxy (rewrites the origin). */
  readonly fetch: typeof fetch;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const sockets = new Set<Socket>();
  const proxy: FaultProxy = {
    url: '',
    faults: new Map(),
    slowMs: 0,
    counts: new Map(),
    fetch: (input, init) => {
      const url = typeof input === 'string' || input instanceof URL ? String(input) : input.url;
      return fetch(url.startsWith(target) ? proxy.url + url.slice(target.length) : url, init);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };

  const pass = async (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (name === 'host' || name === 'connection' || value === undefined) continue;
      headers.set(name, Array.isArray(value) ? value.join(', ') : value);
    }
    const upstream = await fetch(`${target}${req.url}`, {
      method: req.method,
      headers,
      body: req.method === 'GET' || req.method === 'HEAD' ? undefined : body,
      redirect: 'manual',
    });
    const text = Buffer.from(await upstream.arrayBuffer());
    const out: Record<string, string> = {};
    upstream.headers.forEach((value, name) => {
      if (name !== 'content-encoding' && name !== 'transfer-encoding' && name !== 'connection')
        out[name] = value;
    });
    out['content-length'] = String(text.length);
    res.writeHead(upstream.status, out).end(text);
  };

  const server: Server = createServer(async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    proxy.counts.set(path, (proxy.counts.get(path) ?? 0) + 1);
    const body = await readBody(req);
    const fault = proxy.faults.get(path) ?? 'pass';
    switch (fault) {
      case 'hang':
        return;
      case 'stall-body':
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
        res.write('{"keys":[{"kty":');
        return;
      case 'reset':
        req.socket.destroy();
        return;
      case '500':
        res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"server_error"}');
        return;
      case '503-html':
        res.writeHead(503, { 'content-type': 'text/html' }).end('<html><body>down</body></html>');
        return;
      case 'html':
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>maintenance</body></html>');
        return;
      case 'wrong-json':
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys":"none","status":"ok"}');
        return;
      case 'redirect':
        res.writeHead(302, { location: `${target}${req.url}` }).end();
        return;
      case 'slow':
        await new Promise((resolve) => setTimeout(resolve, proxy.slowMs));
        return pass(req, res, body);
      default:
        return pass(req, res, body);
    }
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (proxy as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}

/** A loopback port nothing listens on (bound, then closed): connections are refused. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
