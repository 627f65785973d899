import { readFileSync } from 'node:fs';
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

/** The OS's ephemeral port range (Linux), where `listen(0)` and outgoing connections take ports from. */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    if (Number(low) > 0 && Number(high) >= Number(low)) return [Number(low), Number(high)];
  } catch {
    // Not Linux: fall back to Linux's default range, which IANA's dynamic range (49152–65535) is inside.
  }
  return [32768, 60999];
}

const handedOut = new Set<number>();

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A free TCP port on 127.0.0.1 *below* the OS's ephemeral range, for a server that a test kills and
 * starts again on the same port (the fault suite, the soak). A port from getFreePort() comes from the
 * ephemeral range, so while its owner is down any process that listens on 0 (another suite running
 * beside it) can be given it, and the restart then fails or the clients talk to a stranger.
 */
export async function getRestartablePort(): Promise<number> {
  const [low] = ephemeralRange();
  const ceiling = Math.max(low, 11_000) - 1;
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 10_000 + Math.floor(Math.random() * (ceiling - 10_000));
    // Probes run concurrently (Promise.all of several ports): never hand the same one out twice.
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (await canListen(port)) return port;
  }
  throw new Error('no free port below the ephemeral range after 200 tries');
}
