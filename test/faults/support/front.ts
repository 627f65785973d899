// A loopback HTTP front between the BFFs and the IdP: the IdP's issuer is the front's address, so
// every request to the IdP passes here. It forwards everything unchanged, counts token-endpoint
// requests (by grant type, and refresh requests by a hash of the refresh token they present, so the
// test can tell "one refresh per token" without ever keeping a token), and can hold token requests
// for a while: a token endpoint slower than the BFF's refresh lock, which the real IdP cannot be made
// to be on demand.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One token-endpoint request seen by the front. */
export interface TokenRequest {
  at: number;
  grantType: string;
  /** sha256 of the presented refresh token (refresh requests only), first 12 hex digits. */
  refreshTokenHash?: string | undefined;
  /** How long the front held it before forwarding (ms). */
  heldMs: number;
  /** Status the IdP answered, or 0 when the BFF had gone before the answer came back. */
  status?: number;
}

export interface Front {
  readonly url: string;
  readonly port: number;
  readonly tokenRequests: TokenRequest[];
  /** Hold each token request this long before forwarding it (0 = pass straight through). */
  delayMs: number;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

/** Starts a front on a free port forwarding to `upstreamPort` on 127.0.0.1. */
export async function startFront(upstreamPort: number, tokenPath = '/token'): Promise<Front> {
  const front: Front = {
    url: '',
    port: 0,
    tokenRequests: [],
    delayMs: 0,
    close: async () => {},
  };
  const server: Server = createServer(async (req, res) => {
    let body: Buffer;
    try {
      body = await readBody(req);
    } catch {
      res.destroy();
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    let seen: TokenRequest | undefined;
    if (req.method === 'POST' && path === tokenPath) {
      const form = new URLSearchParams(body.toString('utf8'));
      const token = form.get('refresh_token');
      seen = {
        at: Date.now(),
        grantType: form.get('grant_type') ?? '',
        refreshTokenHash: token ? createHash('sha256').update(token).digest('hex').slice(0, 12) : undefined,
        heldMs: front.delayMs,
      };
      front.tokenRequests.push(seen);
      // A slow token endpoint: the request has arrived and will be processed, only late. It is
      // processed even if the BFF stops waiting meanwhile, as a real slow server would.
      if (front.delayMs > 0) await new Promise((r) => setTimeout(r, front.delayMs));
    }
    const upstream = request(
      {
        host: '127.0.0.1',
        port: upstreamPort,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, 'content-length': String(body.length) },
      },
      (answer) => {
        if (seen) seen.status = res.destroyed ? 0 : (answer.statusCode ?? 0);
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    // The IdP refused or reset: reset the BFF's connection too, rather than invent an HTTP answer.
    upstream.once('error', () => res.destroy());
    upstream.end(body);
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(front, {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  });
}
