// Test helpers: a fake token endpoint for faults the real IdP cannot produce on demand (503, hangs,
// 429, odd responses), a logger that captures every line, a controllable clock.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { TokenManagerLogger } from '../src/index.js';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  form: URLSearchParams;
  body: string;
}

export type FakeReply =
  | { status?: number; headers?: Record<string, string>; json?: unknown; text?: string }
  | 'hang'
  | 'reset';

export interface FakeServer {
  url: string;
  requests: SeenRequest[];
  /** Answers each request; called with the request number (1-based). */
  reply: (request: SeenRequest, n: number) => FakeReply | Promise<FakeReply>;
  close(): Promise<void>;
}

/** A real HTTP server on 127.0.0.1:0 whose answers the test scripts. */
export async function startFakeServer(): Promise<FakeServer> {
  const hanging = new Set<ServerResponse>();
  const fake: FakeServer = {
    url: '',
    requests: [],
    reply: () => ({ status: 500, json: { error: 'server_error' } }),
    close: async () => {
      for (const res of hanging) res.destroy();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const seen: SeenRequest = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
      form: new URLSearchParams(body),
      body,
    };
    fake.requests.push(seen);
    const answer = await fake.reply(seen, fake.requests.length);
    if (answer === 'hang') {
      hanging.add(res);
      return;
    }
    if (answer === 'reset') {
      req.socket.destroy();
      return;
    }
    const headers: Record<string, string> = { 'cache-control': 'no-store', ...answer.headers };
    if (answer.json !== undefined) headers['content-type'] = 'application/json';
    res.writeHead(answer.status ?? 200, headers);
    res.end(answer.json !== undefined ? JSON.stringify(answer.json) : (answer.text ?? ''));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}

/** A token response as a real server would send it. */
export function tokenResponse(accessToken: string, extra: Record<string, unknown> = {}): FakeReply {
  return {
    status: 200,
    json: { access_token: accessToken, token_type: 'Bearer', expires_in: 300, ...extra },
  };
}

/** A logger that keeps every line (as JSON) so tests can search them for secrets. */
export function captureLogger(): TokenManagerLogger & { lines: string[] } {
  const lines: string[] = [];
  const log = (level: string) => (obj: object, msg?: string) => {
    lines.push(JSON.stringify({ level, ...obj, msg }));
  };
  return { lines, debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

/** A settable clock in epoch milliseconds. */
export function fakeClock(start = Date.now()): { now: () => number; advance(seconds: number): void } {
  let now = start;
  return {
    now: () => now,
    advance(seconds: number) {
      now += seconds * 1000;
    },
  };
}

/**
 * What the fault front does with one request: forward it to the real server (`pass`), or inject a
 * fault the real server cannot produce on demand.
 * - `hang`: never answer. `hang-body`: forward, send the real status, headers and half the body, then stall.
 * - `reset`: cut the connection before answering. `reset-body`: like `hang-body`, then cut.
 * - an object: answer it instead of the real server (a 503 page, a 429, an HTML error page …).
 * - `mangle-auth`: forward with the client credentials replaced by wrong ones (the real server rejects them).
 */
export type FrontFault =
  | 'pass'
  | 'hang'
  | 'hang-body'
  | 'reset'
  | 'reset-body'
  | 'mangle-auth'
  | { status: number; headers?: Record<string, string>; body?: string };

export interface FaultFront {
  /** `http://127.0.0.1:<port>`: use it where the real server's origin would go. */
  url: string;
  /** Every request the front received (method and path). */
  requests: Array<{ method: string; url: string }>;
  /** Decides each request's fate (request number is 1-based). Default: `pass`. */
  fault: (n: number, request: { method: string; url: string }) => FrontFault;
  close(): Promise<void>;
}

/**
 * A small HTTP front on 127.0.0.1 that forwards to `target` (the real sample IdP) and injects the
 * faults a test scripts: the real IdP answers everything that is not a fault.
 */
export async function startFaultFront(target: string): Promise<FaultFront> {
  const upstream = new URL(target);
  const open = new Set<Socket>();
  const front: FaultFront = {
    url: '',
    requests: [],
    fault: () => 'pass',
    close: async () => {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const seen = { method: req.method ?? 'GET', url: req.url ?? '/' };
    front.requests.push(seen);
    const fault = front.fault(front.requests.length, seen);
    if (fault === 'hang') return;
    if (fault === 'reset') {
      req.socket.destroy();
      return;
    }
    if (typeof fault === 'object') {
      res.writeHead(fault.status, { 'cache-control': 'no-store', ...fault.headers });
      res.end(fault.body ?? '');
      return;
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (typeof value === 'string' && name !== 'host' && name !== 'connection') headers[name] = value;
    }
    let body: Buffer = Buffer.concat(chunks);
    if (fault === 'mangle-auth') {
      if (headers.authorization)
        headers.authorization = `Basic ${Buffer.from('worker:wrong').toString('base64')}`;
      const form = new URLSearchParams(body.toString('utf8'));
      if (form.has('client_secret')) form.set('client_secret', 'wrong');
      body = Buffer.from(form.toString());
      headers['content-length'] = String(body.length);
    }
    const answer = await fetch(new URL(seen.url, upstream), {
      method: seen.method,
      headers,
      ...(body.length > 0 ? { body } : {}),
    });
    const payload = Buffer.from(await answer.arrayBuffer());
    const out: Record<string, string> = {};
    answer.headers.forEach((value, name) => {
      if (name !== 'content-length' && name !== 'transfer-encoding' && name !== 'connection')
        out[name] = value;
    });
    if (fault === 'hang-body' || fault === 'reset-body') {
      // Announce the full length, send half: the client waits for the rest.
      res.writeHead(answer.status, { ...out, 'content-length': String(payload.length) });
      res.write(payload.subarray(0, Math.floor(payload.length / 2)));
      if (fault === 'reset-body') setTimeout(() => req.socket.destroy(), 20);
      return;
    }
    res.writeHead(answer.status, out);
    res.end(payload);
  });
  server.on('connection', (socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  front.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return front;
}
