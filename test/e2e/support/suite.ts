// Starts the whole sample suite in this process on its documented ports, like `npm start` does:
// the sample IdP on 127.0.0.1:4000, the sample API on 127.0.0.1:4001 and the BFF host (serving the
// SPA build) on localhost:3000. Short access-token lifetime so refreshes happen during the tests.
import { existsSync } from 'node:fs';
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import { join } from 'node:path';
// The sample apps are not dependencies of the workspace root, so they are imported by path (their
// package entry points are exactly these files).
import { createApp as createApi } from '@gatehouse/sample-api';
import { createApp as createBffHost } from '@gatehouse/sample-bff';
import { createIdp, type Idp } from '@gatehouse/sample-idp';
import { closeServers, listenOn, listenOnLocalhost } from './ports.js';
import { IssuedTokens } from './secrets.js';

export const IDP_URL = 'http://127.0.0.1:4000';
export const API_URL = 'http://127.0.0.1:4001';
export const BFF_URL = 'http://localhost:3000';
export const SPA_DIST = join(process.cwd(), 'apps', 'spa', 'dist');

/** One request the BFF host answered, as seen on the wire (for the cross-site checks). */
export interface BffRequestRecord {
  method: string;
  path: string;
  origin: string | undefined;
  secFetchSite: string | undefined;
  hadCookie: boolean;
  hadCsrfHeader: boolean;
  status: number;
}

export interface SuiteOptions {
  /** Access-token lifetime at the IdP, seconds. */
  accessTokenTtl: number;
  /** The BFF refreshes when the access token expires within this many seconds. */
  refreshMargin: number;
}

export interface RunningSuite {
  readonly idp: Idp;
  /** Every access, refresh and ID token the IdP's token endpoint issued (the real values). */
  readonly tokens: IssuedTokens;
  /** Every request the BFF host answered. */
  readonly bffRequests: BffRequestRecord[];
  /** Requests that reached the sample API (method + path). */
  readonly apiRequests: Array<{ method: string; path: string; status: number }>;
  /** Stops the API's listener (the BFF then sees connection refused), keeping its data. */
  stopApi(): Promise<void>;
  /** Listens again with the same API instance (same todos). */
  startApi(): Promise<void>;
  close(): Promise<void>;
}

/** Copies every byte a response sends so the token endpoint's JSON can be read afterwards. */
function teeBody(res: ServerResponse, done: (body: string) => void): void {
  const chunks: Buffer[] = [];
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
  const keep = (chunk: unknown, encoding?: unknown) => {
    if (typeof chunk === 'string') chunks.push(Buffer.from(chunk, (encoding as BufferEncoding) ?? 'utf8'));
    else if (chunk instanceof Uint8Array) chunks.push(Buffer.from(chunk));
  };
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    keep(chunk, rest[0]);
    return write(chunk, ...rest);
  }) as ServerResponse['write'];
  res.end = ((chunk?: unknown, ...rest: unknown[]) => {
    if (chunk !== undefined && typeof chunk !== 'function') keep(chunk, rest[0]);
    return end(chunk, ...rest);
  }) as ServerResponse['end'];
  res.once('finish', () => done(Buffer.concat(chunks).toString('utf8')));
}

export async function startSuite(options: SuiteOptions): Promise<RunningSuite> {
  if (!existsSync(join(SPA_DIST, 'index.html'))) {
    throw new Error(
      `The SPA is not built (${SPA_DIST}/index.html is missing). Run: npx --yes pnpm@12.4.2 --filter @gatehouse/sample-spa build`,
    );
  }
  const servers: Server[] = [];
  const closers: Array<() => unknown> = [];
  let apiServer: Server | undefined;
  const stop = async () => {
    await closeServers(apiServer ? [...servers, apiServer] : servers);
    for (const close of closers.reverse()) await close();
  };
  try {
    const tokens = new IssuedTokens();
    const idp = await createIdp({
      issuer: IDP_URL,
      bffBaseUrl: BFF_URL,
      accessTokenTtl: options.accessTokenTtl,
      // As under `npm start` (IDP_REQUIRE_PAR): sign-ins must be pushed (L16), as the BFF does by default.
      requirePushedAuthorizationRequests: true,
    });
    closers.push(() => idp.close());
    const idpHandler: RequestListener = (req: IncomingMessage, res: ServerResponse) => {
      if (req.method === 'POST' && (req.url ?? '').split('?')[0] === '/token') {
        teeBody(res, (body) => tokens.addTokenResponse(body, 'token endpoint'));
      }
      idp.handler(req, res);
    };
    servers.push(await listenOn('sample IdP', idpHandler, '127.0.0.1', 4000));

    const apiRequests: RunningSuite['apiRequests'] = [];
    // As under `npm start`: the API checks DPoP proofs against its public URL (the BFF sends DPoP-bound
    // user tokens by default, D1).
    const api = createApi({ issuer: IDP_URL, publicUrl: API_URL });
    const apiHandler: RequestListener = (req, res) => {
      res.once('finish', () =>
        apiRequests.push({
          method: req.method ?? '',
          path: (req.url ?? '').split('?')[0]!,
          status: res.statusCode,
        }),
      );
      api(req, res);
    };
    apiServer = await listenOn('sample API', apiHandler, '127.0.0.1', 4001);

    const bffRequests: BffRequestRecord[] = [];
    const bff = createBffHost({
      issuer: IDP_URL,
      baseUrl: BFF_URL,
      apiUrl: API_URL,
      spaDir: SPA_DIST,
      refreshMargin: options.refreshMargin,
    });
    closers.push(() => bff.close());
    const bffHandler: RequestListener = (req, res) => {
      // Read the headers now: the proxy strips Cookie from the request before forwarding it (P2).
      const header = (name: string) => {
        const value = req.headers[name];
        return Array.isArray(value) ? value.join(',') : value;
      };
      const seen = {
        method: req.method ?? '',
        path: (req.url ?? '').split('?')[0]!,
        origin: header('origin'),
        secFetchSite: header('sec-fetch-site'),
        hadCookie: Boolean(header('cookie')?.includes('__Host-')),
        hadCsrfHeader: header('x-csrf') !== undefined,
      };
      res.once('finish', () => bffRequests.push({ ...seen, status: res.statusCode }));
      bff(req, res);
    };
    const bffServers = await listenOnLocalhost('BFF host', bffHandler, 3000);
    servers.push(...bffServers);
    for (const server of bffServers) bff.bff.attach(server);

    return {
      idp,
      tokens,
      bffRequests,
      apiRequests,
      stopApi: () => closeServers(apiServer ? [apiServer] : []),
      startApi: async () => {
        apiServer = await listenOn('sample API', apiHandler, '127.0.0.1', 4001);
      },
      close: stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
