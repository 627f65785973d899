// The ports helpers: a restartable port lies below the OS's ephemeral range (where listen(0) takes its
// ports), is free, and is never handed out twice in one process.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { getRestartablePort } from '../src/ports.js';

const ephemeralLow = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    return 32768;
  }
})();

describe('getRestartablePort', () => {
  it('gives distinct free ports below the ephemeral range, even when asked concurrently', async () => {
    const ports = await Promise.all(Array.from({ length: 20 }, () => getRestartablePort()));
    expect(new Set(ports).size).toBe(20);
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(10_000);
      expect(port).toBeLessThan(ephemeralLow);
    }
    // Free: a server can listen on it.
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(ports[0], '127.0.0.1', resolve);
    });
    await new Promise((resolve) => server.close(resolve));
  });
});
