// In-process sample BFF host for tests: apps/bff's createApp on 127.0.0.1, reachable as
// http://localhost:<port> (a different site than the IdP on 127.0.0.1, as in production).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp, type SampleBffApp, type SampleBffConfig } from '@gatehouse/sample-bff';

/** Options of {@link startBff}: the sample host's config plus the port. */
export interface StartBffOptions extends SampleBffConfig {
  /** The IdP issuer (e.g. `idp.issuer` from startIdp). */
  issuer: string;
  /** Port to listen on; pick it with getFreePort() first when the IdP must know the redirect URI. Default: a free port. */
  port?: number;
}

/** A started BFF host. */
export interface RunningBff {
  /** `http://localhost:<port>` (the BFF's public base URL). */
  readonly url: string;
  readonly port: number;
  readonly app: SampleBffApp;
  readonly server: Server;
  /** Stops the server (dropping keep-alive connections) and the BFF's timers. */
  close(): Promise<void>;
}

/**
 * Starts the sample BFF host in-process.
 *
 * @example
 * const port = await getFreePort();
 * const idp = await startIdp({ bffBaseUrl: `http://localhost:${port}` });
 * const bff = await startBff({ port, issuer: idp.issuer });
 */
export async function startBff(options: StartBffOptions): Promise<RunningBff> {
  const { port: wanted, ...config } = options;
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(wanted ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://localhost:${port}`;
  let app: SampleBffApp;
  try {
    app = createApp({ baseUrl: url, ...config });
  } catch (error) {
    server.close();
    throw error;
  }
  server.on('request', app);
  app.bff.attach(server);
  return {
    url,
    port,
    app,
    server,
    async close() {
      await app.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
