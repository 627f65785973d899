// Test helpers: a fake token endpoint for faults the real IdP cannot produce on demand (503, hangs,
// 429, odd responses), a logger that captures every line, a controllable clock.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
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
