// A stand-in for the BFF in IdP tests: answers the redirect URI and records back-channel logouts.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Receiver {
  /** `http://localhost:<port>`: a different site than the IdP on 127.0.0.1, as in the samples. */
  url: string;
  /** `logout_token` values posted to `/bff/backchannel`, in order. */
  logoutTokens: string[];
  /** Resolves with the next logout token posted. */
  nextLogoutToken(timeoutMs?: number): Promise<string>;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const logoutTokens: string[] = [];
  const waiters: Array<(token: string) => void> = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method === 'POST' && url.pathname === '/bff/backchannel') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const token = new URLSearchParams(Buffer.concat(chunks).toString()).get('logout_token') ?? '';
        logoutTokens.push(token);
        for (const w of waiters.splice(0)) w(token);
        res.writeHead(200, { 'cache-control': 'no-store' }).end();
      });
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`receiver: ${url.pathname}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://localhost:${port}`,
    logoutTokens,
    nextLogoutToken: (timeoutMs = 3000) =>
      new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no logout token within timeout')), timeoutMs);
        waiters.push((t) => {
          clearTimeout(timer);
          resolve(t);
        });
      }),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
