import { createServer } from 'node:net';

/**
 * Asks the OS for a free TCP port on 127.0.0.1. Use it only when a port must be known before the
 * server that will use it starts (e.g. a redirect URI registered at the IdP); otherwise listen on 0.
 */
export async function getFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
