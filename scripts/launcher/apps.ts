// The apps `npm start` runs, in start order. Each starts only if its `apps/<name>/src/server.ts`
// exists, so the list can name apps that later issues add.

/** Environment the launcher passes to every app (process.env plus derived URLs). */
export type Env = Record<string, string | undefined>;

export interface LaunchApp {
  /** Folder under `apps/` and the log prefix. */
  name: string;
  /** What it is, for the address list. */
  title: string;
  /** ANSI colour code for the prefix (e.g. 36 = cyan). */
  color: number;
  /** Env var that sets its port; named in the "port taken" message. */
  portEnv?: string;
  /** Default port. */
  defaultPort?: number;
  /** Host it binds, for the port check. */
  host?: string;
  /** Health URL to wait for; without one the launcher waits for the process to stay up. */
  healthPath?: string;
  /** Public URL printed at the end (built from the port). */
  url?: (port: number) => string;
  /** One line shown next to the address. */
  hint?: string;
}

export const APPS: readonly LaunchApp[] = [
  {
    name: 'idp',
    title: 'Identity provider',
    color: 35,
    portEnv: 'IDP_PORT',
    defaultPort: 4000,
    host: '127.0.0.1',
    healthPath: '/health',
    url: (port) => `http://127.0.0.1:${port}`,
    hint: 'users alice/alice and bob/bob',
  },
  {
    name: 'api',
    title: 'Sample API',
    color: 33,
    portEnv: 'API_PORT',
    defaultPort: 4001,
    host: '127.0.0.1',
    healthPath: '/health',
    url: (port) => `http://127.0.0.1:${port}`,
    hint: 'reached through the BFF (or by the worker)',
  },
  {
    name: 'bff',
    title: 'App (BFF + SPA)',
    color: 36,
    portEnv: 'BFF_PORT',
    defaultPort: 3000,
    host: 'localhost',
    healthPath: '/health',
    url: (port) => `http://localhost:${port}`,
    hint: 'open this one',
  },
  {
    name: 'worker',
    title: 'Worker',
    color: 32,
    hint: 'calls the API with client credentials on a schedule',
  },
];

/** The port an app will use under `env`, or undefined for apps without one. */
export function portOf(app: LaunchApp, env: Env): number | undefined {
  if (app.defaultPort === undefined) return undefined;
  const raw = app.portEnv ? env[app.portEnv] : undefined;
  if (raw === undefined || raw === '') return app.defaultPort;
  const port = Number(raw);
  if (!Number.isInteger(port) || port <= 0 || port > 65_535) {
    throw new TypeError(`${app.portEnv} must be a TCP port number (1-65535), got ${JSON.stringify(raw)}`);
  }
  return port;
}

/**
 * Derives the cross-app URLs from the ports so that changing one port (say IDP_PORT) keeps the
 * suite consistent. Explicit values in `env` win.
 */
/** Access-token lifetime (seconds) of the sample suite unless `ACCESS_TOKEN_TTL` says otherwise. */
export const DEMO_ACCESS_TOKEN_TTL = 60;

export function deriveEnv(env: Env, apps: readonly LaunchApp[] = APPS): Env {
  const byName = new Map(apps.map((a) => [a.name, a]));
  const out: Env = { ...env };
  const idp = byName.get('idp');
  const idpPort = idp ? portOf(idp, env) : undefined;
  if (idpPort !== undefined) out.ISSUER ??= `http://127.0.0.1:${idpPort}`;
  const bff = byName.get('bff');
  const bffPort = bff ? portOf(bff, env) : undefined;
  if (bffPort !== undefined) out.BFF_BASE_URL ??= `http://localhost:${bffPort}`;
  const api = byName.get('api');
  const apiPort = api ? portOf(api, env) : undefined;
  if (apiPort !== undefined) out.API_URL ??= `http://127.0.0.1:${apiPort}`;
  // The demo's access tokens are short-lived so that a learner sees the BFF and the worker renew them
  // within a minute of clicking around (DESIGN.md: "ACCESS_TOKEN_TTL short makes refresh visible").
  out.ACCESS_TOKEN_TTL ??= String(DEMO_ACCESS_TOKEN_TTL);
  // The demo's report endpoint takes only DPoP-bound tokens, so a copied worker token alone is useless.
  out.API_REQUIRE_DPOP ??= 'true';
  // ... and the worker gets DPoP-bound tokens (a key pair generated at start) to call it.
  out.WORKER_DPOP ??= 'true';
  // The IdP takes sign-ins of the `bff` client only as pushed authorization requests (RFC 9126), which
  // the BFF sends by default: the browser sees only client_id and request_uri (BFF_PAR=false: refused).
  out.IDP_REQUIRE_PAR ??= 'true';
  // The BFF gets DPoP-bound user tokens (a key pair per session) and proves them on every API call
  // (BFF_DPOP=false: Bearer). The sample host defaults to it; said here so the suite's choice is visible.
  out.BFF_DPOP ??= 'true';
  return out;
}
