// In-process sample IdP for tests: real oidc-provider, real HTTP on 127.0.0.1, a free port.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  createIdp,
  generateSigningJwk,
  type Idp,
  type IdpOptions,
  type JWK,
  publicJwk,
} from '@gatehouse/sample-idp';

/** A started test IdP: everything {@link Idp} has, plus its URL and a `close()`. */
export interface RunningIdp extends Idp {
  /** Same as `issuer`: `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Private key of the `worker-jwt` client (private_key_jwt), generated unless `workerJwks` was given. */
  readonly workerPrivateJwk: JWK | undefined;
  /** Stops the server (dropping open keep-alive connections) and the IdP's timers. */
  close(): Promise<void>;
}

/** Options of {@link startIdp}: {@link IdpOptions} (issuer optional) plus the port to listen on. */
export interface StartIdpOptions extends Partial<IdpOptions> {
  /**
   * Port on 127.0.0.1. Default 0 (a free one). Give the port of an IdP you closed to restart it
   * with the same issuer, e.g. on the same `dataDir` to check what survives.
   */
  port?: number;
}

/**
 * Starts the sample IdP on `127.0.0.1:0` with issuer `http://127.0.0.1:<port>` and fresh in-memory
 * keys. Options are {@link IdpOptions} minus `issuer` (which must match the port, so it is set here).
 *
 * @example
 * const idp = await startIdp({ bffBaseUrl: bff.url });
 * afterAll(() => idp.close());
 */
export async function startIdp(startOptions: StartIdpOptions = {}): Promise<RunningIdp> {
  const { port: wantedPort = 0, ...options } = startOptions;
  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(wantedPort, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const issuer = options.issuer ?? `http://127.0.0.1:${port}`;
  let workerPrivateJwk: JWK | undefined;
  let workerJwks = options.workerJwks;
  if (!workerJwks) {
    workerPrivateJwk = await generateSigningJwk('ES256');
    workerJwks = { keys: [publicJwk(workerPrivateJwk)] };
  }
  let idp: Idp;
  try {
    idp = await createIdp({ ...options, issuer, workerJwks });
  } catch (error) {
    server.close();
    throw error;
  }
  server.on('request', idp.handler);
  const close = async (): Promise<void> => {
    idp.close();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  };
  // A prototype-preserving wrapper: `provider` stays a live getter (it changes on key rotation).
  return Object.create(idp, {
    url: { value: issuer, enumerable: true },
    workerPrivateJwk: { value: workerPrivateJwk, enumerable: true },
    close: { value: close, enumerable: true },
  }) as RunningIdp;
}
