// The real sample IdP behind a fault-injecting HTTP front, both on loopback. The front IS the issuer
// (`http://127.0.0.1:<front port>`), so discovery, login and every token request really cross it; it
// forwards over real HTTP to the IdP on its own port, except refresh-token grants at /token while a
// fault is set: then it hangs, answers 5xx/429/HTML, resets the socket, cuts the body off, or holds the
// request for a while and THEN hands it to the IdP (a frozen OP that thaws: the grant is processed even
// if the BFF gave up waiting, exactly what makes an early retry with the same refresh token dangerous).
// `pushFault` does the same to pushed authorization requests (POST /request, RFC 9126).
// Connection refused and DNS failures cannot come from a listening front; `fetch` (for createBff's
// `fetch` seam) sends token requests to a closed port or an unresolvable host for those.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createIdp, generateSigningJwk, type Idp, type IdpOptions, publicJwk } from '@gatehouse/sample-idp';
import { getFreePort } from '@gatehouse/testing';

/** What the front does with a refresh-token grant at /token. */
export type RefreshFault =
  | { kind: 'pass' }
  /** Never answers (the socket stays open until the client gives up or the front closes). */
  | { kind: 'hang' }
  /** Holds the request `ms`, then forwards it to the IdP whether or not the client still waits. */
  | { kind: 'delay'; ms: number }
  /** Holds every request until `until` (epoch ms), then forwards them all: SIGSTOP … SIGCONT. */
  | { kind: 'freeze'; until: number }
  /** Destroys the connection without an answer. */
  | { kind: 'reset' }
  /** Answers this status/body itself; the IdP never sees the request. */
  | { kind: 'answer'; status: number; body: string; contentType: string; headers?: Record<string, string> }
  /** Forwards to the IdP, then sends the status line and half of the body, and cuts the connection. */
  | { kind: 'truncate' };

/** Token-request failures the front cannot produce (it listens): made by `front.fetch`. */
export type NetworkFault = 'refused' | 'dns' | undefined;

export interface IdpFront {
  readonly idp: Idp;
  readonly issuer: string;
  /** Fault for refresh-token grants; `{ kind: 'pass' }` by default. */
  fault: RefreshFault;
  /** Fault for pushed authorization requests (POST /request); `{ kind: 'pass' }` by default. */
  pushFault: RefreshFault;
  /** Pushed authorization requests that reached the front. */
  pushes: number;
  /** Fault made by {@link IdpFront.fetch} for /token requests. */
  network: NetworkFault;
  /** Refresh-token grants that reached the front, in order (sha256 of the refresh token, never the token). */
  readonly refreshes: { rt: string; at: number }[];
  /** Token requests sent while `network` was set (they never reach the front, so `refreshes` misses them). */
  networkAttempts: number;
  /** Access tokens the IdP issued for refresh grants, in order (sha256 prefixes, never the tokens). */
  readonly issued: string[];
  /** fetch for createBff's `fetch` option. */
  readonly fetch: (input: string | URL, init?: RequestInit) => Promise<Response>;
  close(): Promise<void>;
}

/** The short sha256 the front records instead of a token. */
export const tokenHash = (value: string) => createHash('sha256').update(value).digest('hex').slice(0, 16);

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Starts the IdP (options as for startIdp) behind the front. */
export async function startIdpFront(options: Partial<IdpOptions> = {}): Promise<IdpFront> {
  const frontPort = await getFreePort();
  const issuer = `http://127.0.0.1:${frontPort}`;
  const workerPrivate = await generateSigningJwk('ES256');
  const idp = await createIdp({ workerJwks: { keys: [publicJwk(workerPrivate)] }, ...options, issuer });
  const backend: Server = createServer(idp.handler);
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', () => resolve()));
  const backendPort = (backend.address() as AddressInfo).port;

  /** Forwards to the IdP; refresh answers are read whole to note the issued access token (and maybe cut). */
  const forward = (
    req: IncomingMessage,
    body: Buffer,
    res: ServerResponse,
    mode?: 'refresh' | 'truncate',
  ) => {
    const upstream = request(
      { host: '127.0.0.1', port: backendPort, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        if (!mode) {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
          return;
        }
        readBody(up).then(
          (full) => {
            try {
              const at = (JSON.parse(full.toString('utf8')) as { access_token?: unknown }).access_token;
              if (typeof at === 'string') front.issued.push(tokenHash(at));
            } catch {}
            const { 'content-length': _drop, ...headers } = up.headers;
            res.writeHead(up.statusCode ?? 502, { ...headers, 'content-length': String(full.length) });
            if (mode === 'refresh') {
              res.end(full);
              return;
            }
            res.write(full.subarray(0, Math.floor(full.length / 2)));
            setTimeout(() => res.socket?.destroy(), 20);
          },
          () => res.socket?.destroy(),
        );
      },
    );
    upstream.on('error', () => res.socket?.destroy());
    upstream.end(body);
  };

  const front: IdpFront = {
    idp,
    issuer,
    fault: { kind: 'pass' },
    pushFault: { kind: 'pass' },
    pushes: 0,
    network: undefined,
    refreshes: [],
    networkAttempts: 0,
    issued: [],
    fetch: async (input, init) => {
      const url = new URL(String(input));
      if (url.pathname === '/token' && front.network !== undefined) front.networkAttempts++;
      if (url.pathname === '/token' && front.network === 'refused') {
        url.port = String(closedPort);
      } else if (url.pathname === '/token' && front.network === 'dns') {
        url.hostname = 'gatehouse-idp.invalid'; // RFC 2606: never resolves
      }
      return fetch(url, init);
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await new Promise<void>((resolve) => {
        backend.close(() => resolve());
        backend.closeAllConnections();
      });
      idp.close();
    },
  };

  /** Applies `fault` to one request the front has read whole (a refresh grant or a pushed request). */
  const apply = (fault: RefreshFault, req: IncomingMessage, body: Buffer, res: ServerResponse) => {
    switch (fault.kind) {
      case 'pass':
        return forward(req, body, res, 'refresh');
      case 'hang':
        return;
      case 'delay':
        setTimeout(() => forward(req, body, res, 'refresh'), fault.ms);
        return;
      case 'freeze':
        setTimeout(() => forward(req, body, res, 'refresh'), Math.max(0, fault.until - Date.now()));
        return;
      case 'reset':
        req.socket.destroy();
        return;
      case 'answer':
        res.writeHead(fault.status, {
          'content-type': fault.contentType,
          'cache-control': 'no-store',
          ...fault.headers,
        });
        res.end(fault.body);
        return;
      case 'truncate':
        return forward(req, body, res, 'truncate');
    }
  };

  const server: Server = createServer((req, res) => {
    readBody(req).then(
      (body) => {
        if (req.method === 'POST' && req.url === '/request') {
          front.pushes++;
          return front.pushFault.kind === 'pass'
            ? forward(req, body, res)
            : apply(front.pushFault, req, body, res);
        }
        const grant = new URLSearchParams(body.toString('utf8'));
        if (req.method !== 'POST' || req.url !== '/token' || grant.get('grant_type') !== 'refresh_token') {
          forward(req, body, res);
          return;
        }
        front.refreshes.push({ rt: tokenHash(grant.get('refresh_token') ?? ''), at: Date.now() });
        apply(front.fault, req, body, res);
      },
      () => res.socket?.destroy(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(frontPort, '127.0.0.1', () => resolve());
  });
  // A port nothing listens on: bind and close at once.
  const closedPort = await getFreePort();
  return front;
}
