// A recording pass-through in front of the real sample API: every request the BFF sends is forwarded
// unchanged (the API checks the proofs against this front's URL, its `publicUrl`) and recorded with
// its Authorization scheme, its DPoP proof and the API's status. `script` answers a request itself,
// for the one fault the real API cannot produce on demand (asking for a nonce again and again).
import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type RunningApi, startApi } from '@gatehouse/testing';

export interface SeenCall {
  readonly method: string;
  readonly path: string;
  /** `DPoP`, `Bearer` or undefined. */
  readonly scheme: string | undefined;
  readonly token: string | undefined;
  readonly proof: string | undefined;
  status: number;
  /** The request body as received (the nonce retry sends it twice). */
  body: string;
}

export interface Front {
  readonly url: string;
  /** Where requests go: the API's own URL (set after the API started with this front's URL). */
  target: string;
  readonly seen: SeenCall[];
  script: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
  close(): Promise<void>;
}

export async function startFront(): Promise<Front> {
  const seen: SeenCall[] = [];
  const server = createServer((req, res) => {
    const [scheme, token] = (req.headers.authorization ?? '').split(' ');
    const proof = req.headers.dpop;
    const call: SeenCall = {
      method: req.method ?? '',
      path: req.url ?? '',
      scheme: scheme || undefined,
      token,
      proof: typeof proof === 'string' ? proof : undefined,
      status: 0,
      body: '',
    };
    seen.push(call);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => {
      call.body = Buffer.concat(chunks).toString('utf8');
    });
    res.once('finish', () => {
      call.status = res.statusCode;
    });
    if (front.script?.(req, res)) return;
    const target = new URL(front.target);
    const upstream = request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const front: Front = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    target: '',
    seen,
    script: undefined,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return front;
}

/** Starts the real sample API behind `front`: it checks each proof's `htu` against the front's URL. */
export async function startApiBehind(
  front: Front,
  options: Parameters<typeof startApi>[0],
): Promise<RunningApi> {
  const api = await startApi({ publicUrl: front.url, ...options });
  front.target = api.url;
  return api;
}

/** Remote APIs for DPoP tests: `<prefix>/todos` and `<prefix>/whoami` of the sample API behind `front`. */
export const dpopRoutes = (front: Front, prefix = '/api') => [
  { prefix: `${prefix}/todos`, upstream: `${front.url}/api/todos`, token: 'user' as const },
  { prefix: `${prefix}/whoami`, upstream: `${front.url}/api/whoami`, token: 'user' as const },
];
