// A page on another site: http://127.0.0.1:<port> is a different *site* from http://localhost:3000
// (different host names, so SameSite cookies of localhost are not sent from it), standing in for an
// attacker's page the signed-in user happens to open.
import type { Server } from 'node:http';
import { listenOn } from './ports.js';

const PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Win a prize</title></head>
<body><h1>Totally harmless page</h1><p>Nothing to see here.</p></body></html>`;

export interface CrossSitePage {
  readonly url: string;
  close(): Promise<void>;
}

export async function startCrossSitePage(): Promise<CrossSitePage> {
  let server: Server | undefined;
  // Port 0: any free port; the origin differs from the BFF's by host anyway.
  server = await listenOn(
    'cross-site page',
    (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(PAGE);
    },
    '127.0.0.1',
    0,
  );
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server?.close(() => resolve());
        server?.closeAllConnections();
        server = undefined;
      }),
  };
}
