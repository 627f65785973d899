// The browser suite runs the samples on their documented ports (the IdP's registered redirect URIs
// name http://localhost:3000), so a busy port is a hard error with a message that says what to do.
import { createServer, type RequestListener, type Server } from 'node:http';

function busy(name: string, host: string, port: number): Error {
  return new Error(
    `The browser tests need ${host}:${port} for the ${name}, but it is already in use. ` +
      `Stop whatever listens there (a running \`npm start\`? check with: ss -ltnp 'sport = :${port}') and run the tests again.`,
  );
}

/** Listens on host:port or throws a clear error when the port is taken. */
export async function listenOn(
  name: string,
  handler: RequestListener,
  host: string,
  port: number,
): Promise<Server> {
  const server = createServer(handler);
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? busy(name, host, port) : error),
    );
    server.listen(port, host, () => resolve());
  });
  return server;
}

/**
 * `localhost` may resolve to 127.0.0.1 or ::1 (Chromium tries both). Listen on both loopback
 * addresses so neither can reach a stranger; no IPv6 on this machine is fine.
 */
export async function listenOnLocalhost(
  name: string,
  handler: RequestListener,
  port: number,
): Promise<Server[]> {
  const servers = [await listenOn(name, handler, '127.0.0.1', port)];
  try {
    servers.push(await listenOn(name, handler, '::1', port));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EADDRNOTAVAIL' && code !== 'EAFNOSUPPORT') {
      await closeServers(servers);
      throw error;
    }
  }
  return servers;
}

export async function closeServers(servers: readonly Server[]): Promise<void> {
  await Promise.all(
    servers.map(
      (server) =>
        new Promise<void>((resolve) => {
          if (!server.listening) return resolve();
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    ),
  );
}
