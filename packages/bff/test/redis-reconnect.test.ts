// The Redis store on a client created as the README says (`disableClientInfo: true`) recovers from a
// connection that is reset while the client reconnects. With node-redis 5's default handshake the client
// ignores the failed CLIENT SETINFO, marks itself ready on the dead socket and every command then hangs
// until its timeout, for good: the fault suite's Redis kill hit exactly that (the reconnect met the
// killed server's closing listen socket). A real Redis cannot reset one chosen connection on demand, so
// this uses a minimal RESP server that answers +OK, drops the first connection and resets the second.
import { createServer, type Server, type Socket } from 'node:net';
import { createRedisStore } from '@gatehouse/bff';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Answers every RESP command with +OK; `drop` closes the live connection, `resetNext` resets the next one on its first bytes. */
function startRespServer() {
  let connections = 0;
  let resetNext = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    connections++;
    const reset = resetNext;
    resetNext = false;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.on('data', (data) => {
      if (reset) {
        socket.resetAndDestroy();
        return;
      }
      const commands = data.toString('latin1').match(/^\*\d+\r\n/gm)?.length ?? 0;
      socket.write('+OK\r\n'.repeat(commands));
    });
  });
  return {
    listen: () =>
      new Promise<number>((resolve) =>
        server.listen(0, '127.0.0.1', () => {
          const address = server.address();
          resolve(typeof address === 'object' && address ? address.port : 0);
        }),
      ),
    get connections() {
      return connections;
    },
    dropAndResetTheReconnect() {
      resetNext = true;
      for (const socket of sockets) socket.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('the Redis store across a reset during the reconnect', () => {
  const resp = startRespServer();
  let client: ReturnType<typeof createClient>;
  beforeAll(async () => {
    const port = await resp.listen();
    client = createClient({
      url: `redis://127.0.0.1:${port}`,
      disableClientInfo: true,
      socket: { reconnectStrategy: () => 50 },
    });
    client.on('error', () => {});
    await client.connect();
  });
  afterAll(async () => {
    client.destroy();
    await resp.close();
  });

  it('a reset while reconnecting → 503 at once, then the store works again (never wedged until the command timeout)', async () => {
    const store = createRedisStore({ client, commandTimeout: 2 });
    expect(await store.claimOnce('before', 60)).toBe(true);

    resp.dropAndResetTheReconnect();
    await sleep(100);
    // The first commands meet the reset or the reconnect: they fail fast as store-unavailable (503).
    const started = performance.now();
    const during = await store.claimOnce('during', 60).then(
      () => 'answered',
      (err: { code?: string }) => err.code,
    );
    expect(['answered', 'ERR_BFF_STORE_UNAVAILABLE']).toContain(during);
    expect(performance.now() - started).toBeLessThan(1000);

    // Recovered: a later command is answered by the server, not left to time out.
    const deadline = Date.now() + 3000;
    let recovered = false;
    while (!recovered && Date.now() < deadline) {
      recovered = await store.claimOnce('after', 60).then(
        (claimed) => claimed,
        () => false,
      );
      if (!recovered) await sleep(50);
    }
    expect(recovered).toBe(true);
    expect(resp.connections).toBeGreaterThanOrEqual(3);
  });
});
