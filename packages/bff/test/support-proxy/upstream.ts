// Tiny node:http upstreams for the proxy tests: they record what reached them and produce the
// behaviours the sample API cannot on demand (redirects, Set-Cookie, 401 challenges, hangs, streams, SSE).
import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request as the upstream saw it. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** The client port of the TCP connection (same port = a reused keep-alive connection). */
  remotePort: number | undefined;
}

export interface TestUpstream {
  readonly origin: string;
  readonly port: number;
  readonly seen: SeenRequest[];
  close(): Promise<void>;
}

/** Listens on 127.0.0.1:0 and records every request before `handler` answers it. */
export async function startRecordingServer(
  handler: Parameters<typeof createServer>[1] = (_req, res) => res.end('ok'),
): Promise<TestUpstream> {
  const seen: SeenRequest[] = [];
  const server = createServer((req, res) => {
    seen.push({
      method: req.method ?? '',
      url: req.url ?? '',
      headers: { ...req.headers },
      remotePort: req.socket.remotePort,
    });
    handler?.(req, res);
  });
  return listen(server, seen);
}

async function listen(server: Server, seen: SeenRequest[]): Promise<TestUpstream> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** SSE streams the upstream saw closed by the other side before they finished. */
export const sseAborted = { count: 0 };
/** `/hang` requests whose connection the other side closed (the proxy gave up on them). */
export const hangAborted = { count: 0 };
/** Bytes `/count` received, whether or not the body was ever completed. */
export const counted = { bytes: 0 };
/** `/stall` responses whose connection the other side closed (the proxy gave up on the body). */
export const stallAborted = { count: 0 };

/**
 * The behaviour upstream. Paths (under any base path):
 * `/echo` JSON of what arrived (method, url, headers, body length); `/redirect?to=&status=` a
 * redirect (default 307) to `to`; `/set-cookie`; `/always-401` an invalid_token challenge;
 * `/401-unless?token=` 401 unless that bearer token; `/hang` never answers; `/stall` sends its headers
 * and the first bytes of a body, then nothing; `/download?bytes=` streams zeros; `/upload` hashes the
 * body; `/sse?n=&gap=` n events `gap` ms apart, each carrying its send time.
 */
export function startBehaviourUpstream(): Promise<TestUpstream> {
  return startRecordingServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://upstream');
    const last = url.pathname.split('/').pop();
    switch (last) {
      case 'echo': {
        let length = 0;
        req.on('data', (chunk: Buffer) => {
          length += chunk.length;
        });
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyLength: length }),
          );
        });
        return;
      }
      case 'redirect':
        req.resume();
        res.writeHead(Number(url.searchParams.get('status') ?? '307'), {
          location: url.searchParams.get('to') ?? 'https://evil.example/',
        });
        res.end();
        return;
      case 'count':
        req.on('data', (chunk: Buffer) => {
          counted.bytes += chunk.length;
        });
        req.on('end', () => res.end('counted'));
        return;
      case 'set-cookie':
        res.writeHead(200, {
          'set-cookie': ['upstream=1; Path=/', 'other=2'],
          'x-upstream': 'yes',
          'access-control-allow-origin': 'https://evil.example',
          'access-control-allow-credentials': 'true',
        });
        res.end('cookie');
        return;
      case 'always-401':
        res.writeHead(401, { 'www-authenticate': 'Bearer realm="api", error="invalid_token"' });
        res.end();
        return;
      case '401-unless':
        if (req.headers.authorization === `Bearer ${url.searchParams.get('token')}`) {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ authorization: req.headers.authorization }));
        } else {
          res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' });
          res.end();
        }
        req.resume();
        return;
      case 'plain-401':
        res.writeHead(401, { 'www-authenticate': 'Bearer realm="api"' });
        res.end();
        return;
      case 'hang':
        req.resume();
        res.on('close', () => {
          if (!res.writableFinished) hangAborted.count += 1;
        });
        return; // never answers
      case 'stall':
        req.resume();
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
        res.write('{"partial":');
        res.on('close', () => {
          if (!res.writableFinished) stallAborted.count += 1;
        });
        return; // the rest never comes
      case 'download': {
        const total = Number(url.searchParams.get('bytes') ?? '0');
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const chunk = Buffer.alloc(64 * 1024);
        let sent = 0;
        const pump = () => {
          while (sent < total) {
            const size = Math.min(chunk.length, total - sent);
            sent += size;
            if (!res.write(size === chunk.length ? chunk : chunk.subarray(0, size))) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
        return;
      }
      case 'upload': {
        const hash = createHash('sha256');
        let length = 0;
        req.on('data', (chunk: Buffer) => {
          length += chunk.length;
          hash.update(chunk);
        });
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({ length, sha256: hash.digest('hex'), contentType: req.headers['content-type'] }),
          );
        });
        return;
      }
      case 'sse': {
        const n = Number(url.searchParams.get('n') ?? '3');
        const gap = Number(url.searchParams.get('gap') ?? '200');
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        // As SSE servers do: the headers go out now, not with the first event.
        res.flushHeaders();
        let i = 0;
        const timer = setInterval(() => {
          res.write(`id: ${i}\ndata: ${Date.now()}\n\n`);
          i += 1;
          if (i >= n) {
            clearInterval(timer);
            res.end();
          }
        }, gap);
        res.on('close', () => {
          clearInterval(timer);
          if (i < n) sseAborted.count += 1;
        });
        return;
      }
      case 'reset-mid-body':
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '1000000' });
        res.write(Buffer.alloc(1000));
        setTimeout(() => req.socket.destroy(), 20);
        return;
      default:
        res.writeHead(404);
        res.end();
    }
  });
}

/**
 * An upstream that answers the first request on each keep-alive connection and closes the connection,
 * without a byte of answer, when a second request arrives on it: the race of a reused idle socket the
 * server is closing. `mode: 'reset'` closes with a TCP RST (ECONNRESET), `'close'` with a FIN.
 */
export async function startClosingUpstream(
  mode: 'reset' | 'close',
): Promise<TestUpstream & { readonly closedOnReuse: () => number }> {
  const seen: SeenRequest[] = [];
  let closed = 0;
  const perSocket = new WeakMap<object, number>();
  const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    seen.push({
      method: req.method ?? '',
      url: req.url ?? '',
      headers: { ...req.headers },
      remotePort: req.socket.remotePort,
    });
    const n = (perSocket.get(req.socket) ?? 0) + 1;
    perSocket.set(req.socket, n);
    if (n >= 2) {
      closed += 1;
      if (mode === 'reset') req.socket.resetAndDestroy();
      else req.socket.destroy();
      return;
    }
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`ok ${req.method}`);
    });
  });
  const listening = await listen(server, seen);
  return { ...listening, closedOnReuse: () => closed };
}

/** A raw HTTP/1.1 request (no URL normalisation by the client), for path-escape tests. */
export function rawRequest(
  port: number,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: string | Buffer },
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: options.method ?? 'GET',
        path: options.path,
        headers: options.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Sends `total` bytes as a chunked POST (no Content-Length) to `path`; resolves with the answer. */
export function chunkedPost(
  port: number,
  path: string,
  headers: Record<string, string>,
  total: number,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path,
        headers: { ...headers, 'content-type': 'application/octet-stream' },
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    const chunk = Buffer.alloc(64 * 1024, 1);
    let sent = 0;
    const write = () => {
      while (sent < total) {
        sent += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', write);
          return;
        }
      }
      req.end();
    };
    write();
  });
}
