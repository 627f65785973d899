// A tiny round-robin HTTP load balancer for the scale-out tests: every request (not every connection)
// goes to the next backend, so one browser's calls really are spread over the instances. It forwards
// upgrades too and tags each response with `x-served-by: <index>`.
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';

export interface Balancer {
  readonly url: string;
  /** How many requests each backend got. */
  readonly served: number[];
  close(): Promise<void>;
}

/** Starts the balancer on `port` (0 = any) in front of `backends` (`http://127.0.0.1:<port>` each). */
export async function startBalancer(backends: string[], port = 0): Promise<Balancer> {
  let next = 0;
  const served = backends.map(() => 0);
  const targets = backends.map((b) => new URL(b));
  const pick = () => {
    const index = next;
    next = (next + 1) % targets.length;
    served[index] = (served[index] ?? 0) + 1;
    return { index, target: targets[index] as URL };
  };
  const server: Server = createServer((req, res) => {
    const { index, target } = pick();
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, { ...up.headers, 'x-served-by': String(index) });
        up.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  });
  server.on('upgrade', (req, socket, head) => {
    const { target } = pick();
    const out = connect(Number(target.port), target.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2)
        lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      out.write(`${lines.join('\r\n')}\r\n\r\n`);
      out.write(head);
      out.pipe(socket);
      socket.pipe(out);
    });
    out.on('error', () => socket.destroy());
    socket.on('error', () => out.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    served,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
