// Run as a child process by global-fetch.test.ts: loads @gatehouse/bff (and with it undici), then uses
// Node's global fetch the way a host's own code might, and prints what happened as JSON.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import '@gatehouse/bff';

// Node's own Agent, or the undici package's if loading it took fetch over.
const { Agent: PackageAgent } = await import('undici');
const dispatcher = (globalThis as unknown as Record<symbol, unknown>)[
  Symbol.for('undici.globalDispatcher.1')
];
const server = createServer((req, res) => {
  let length = 0;
  req.on('data', (chunk: Buffer) => {
    length += chunk.length;
  });
  req.on('end', () => res.end(JSON.stringify({ received: length })));
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address() as AddressInfo;
let outcome: unknown;
try {
  const body = Buffer.from('grant_type=client_credentials');
  // An explicit content-length with a Buffer body, as HTTP fronts and proxies forward requests.
  const res = await fetch(`http://127.0.0.1:${port}/`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(body.length) },
    body,
  });
  outcome = await res.json();
} catch (error) {
  outcome = { error: String((error as Error).cause ?? error) };
}
server.close();
console.log(
  JSON.stringify({
    dispatcherAfterImport: dispatcher instanceof PackageAgent ? 'undici package' : 'node',
    outcome,
  }),
);
