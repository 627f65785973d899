// In-process sample API for tests: the real Express app from apps/api on 127.0.0.1, a free port.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ApiConfig, createApp } from '@gatehouse/sample-api';

/** A started sample API. */
export interface RunningApi {
  /** `http://127.0.0.1:<port>` (routes live under `/api`). */
  readonly url: string;
  /** Stops the server, dropping open keep-alive connections. */
  close(): Promise<void>;
}

/**
 * Starts the sample API ({@link ApiConfig}: at least `issuer`) on `127.0.0.1:0`. The API discovers
 * the issuer lazily, so it may start before the IdP.
 *
 * @example
 * const idp = await startIdp();
 * const api = await startApi({ issuer: idp.issuer, introspection: { clientId: 'api', clientSecret: 'api-secret' } });
 * afterAll(() => api.close());
 */
export async function startApi(options: ApiConfig): Promise<RunningApi> {
  const server: Server = createServer(createApp(options));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
