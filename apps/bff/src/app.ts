// The sample BFF host: helmet, @gatehouse/bff (login, session, /api/todos proxy), a local API example
// and the SPA build. `createApp(config)` builds the Express app without listening (tests run it
// in-process); server.ts listens.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Bff,
  type BffOptions,
  createBff,
  createRedisStore,
  type Logger,
  type RedisClientLike,
} from '@gatehouse/bff';
import express, { type Express } from 'express';
import helmet from 'helmet';

/** Development defaults, documented in the README. Never use them outside a laptop demo. */
export const DEV_CLIENT_SECRET = 'bff-secret';
export const DEV_SESSION_SECRET = 'gatehouse-dev-session-secret-change-me-0123456789';

/** Where the SPA build lives by default (`apps/spa/dist`). */
export const DEFAULT_SPA_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../spa/dist');

/** Configuration of the sample host. Every field has a development default except none. */
export interface SampleBffConfig {
  /** Public URL of this host. Default `http://localhost:3000`. */
  baseUrl?: string;
  /** The sample IdP's issuer. Default `http://127.0.0.1:4000`. */
  issuer?: string;
  /** Client id at the IdP. Default `bff`. */
  clientId?: string;
  /** Client secret. Default {@link DEV_CLIENT_SECRET}. */
  clientSecret?: string;
  /** Session secret(s). Default {@link DEV_SESSION_SECRET} (server.ts warns loudly). */
  sessionSecret?: string | string[];
  /** Base URL of the sample API. Default `http://127.0.0.1:4001`. */
  apiUrl?: string;
  /** SPA build folder; a minimal page is served when it has no index.html. Default {@link DEFAULT_SPA_DIR}. */
  spaDir?: string;
  /** A connected node-redis client: sessions go to Redis (several instances can share them). */
  redis?: RedisClientLike;
  /** Redis key prefix. Default `gatehouse:bff:`. */
  redisPrefix?: string;
  /** Refresh margin in seconds (see @gatehouse/bff). */
  refreshMargin?: number;
  /** Serve /bff/diagnostics. Default: NODE_ENV === 'development'. */
  diagnostics?: boolean;
  /**
   * Pushed authorization requests (PAR, RFC 9126), as @gatehouse/bff's `pushedAuthorizationRequests`.
   * Default `'auto'`: the sample IdP advertises PAR, so every sign-in is pushed (env `BFF_PAR`).
   */
  pushedAuthorizationRequests?: BffOptions['pushedAuthorizationRequests'];
  /**
   * DPoP-bound (sender-constrained) user tokens, as @gatehouse/bff's `dpop`. Default true: the sample
   * IdP and API support DPoP, so every session gets its own key and the API gets proofs (env
   * `BFF_DPOP=false` switches it off).
   */
  dpop?: boolean;
  /**
   * Shape of the user-claim values `GET /bff/user` returns, as @gatehouse/bff's `userClaimValues`.
   * Default `'json'` (values as issued); `'string'` is Duende BFF's shape (env `BFF_USER_CLAIM_VALUES`).
   */
  userClaimValues?: BffOptions['userClaimValues'];
  /** Logger (pino in server.ts). Default silent. */
  logger?: Logger;
  /** Further createBff options (tests inject `fetch`, `clock`, timeouts). */
  bff?: Partial<BffOptions>;
}

/** The Express app plus the BFF it mounts. */
export type SampleBffApp = Express & {
  /** The mounted BFF (sessions admin API, upgrade handler, …). */
  readonly bff: Bff;
  /** Stops the BFF's timers (the Redis client, if any, stays with its owner). */
  close(): Promise<void>;
};

const minimalPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gatehouse sample BFF</title></head>
<body>
<h1>Gatehouse sample BFF</h1>
<p>The SPA is not built yet: <code>npx --yes pnpm@12.4.2 --filter @gatehouse/sample-spa build</code>.</p>
<p><a href="/bff/login">Sign in</a> · <a href="/bff/logout">Sign out</a> (signing out from a page needs the
<code>bff:logout_url</code> that <code>GET /bff/user</code> returns to a script sending <code>X-CSRF: 1</code>).</p>
</body></html>`;

/** `Sec-Fetch-Dest` values of a page load: a top-level document or a frame. */
const PAGE_DESTINATIONS = new Set(['document', 'iframe', 'frame']);

/**
 * Reads `BFF_PAR`: unset or `auto` → `'auto'` (push when the IdP advertises PAR), `true` → `'always'`,
 * `false` → `'never'`. Anything else throws, so a typo does not silently change how sign-in works.
 */
export function pushedAuthorizationRequestsFromEnv(
  value: string | undefined,
): BffOptions['pushedAuthorizationRequests'] {
  switch (value?.trim().toLowerCase()) {
    case undefined:
    case '':
    case 'auto':
      return 'auto';
    case 'true':
      return 'always';
    case 'false':
      return 'never';
    default:
      throw new TypeError(
        `BFF_PAR must be true (always push), false (never push) or auto (push when the IdP advertises PAR), got ${JSON.stringify(value)}`,
      );
  }
}

/**
 * Reads `BFF_DPOP`: unset or `true` → true (DPoP-bound user tokens), `false` → false (Bearer). Anything
 * else throws, so a typo does not silently turn sender-constraining off.
 */
export function dpopFromEnv(value: string | undefined): boolean {
  switch (value?.trim().toLowerCase()) {
    case undefined:
    case '':
    case 'true':
      return true;
    case 'false':
      return false;
    default:
      throw new TypeError(
        `BFF_DPOP must be true (DPoP-bound user tokens) or false (Bearer), got ${JSON.stringify(value)}`,
      );
  }
}

/**
 * Reads `BFF_USER_CLAIM_VALUES`: unset or `json` → `'json'` (claim values as issued), `string` →
 * `'string'` (Duende's shape, for SPAs written against Duende BFF). Anything else throws, so a typo
 * does not silently change what the SPA reads.
 */
export function userClaimValuesFromEnv(
  value: string | undefined,
): NonNullable<BffOptions['userClaimValues']> {
  switch (value?.trim().toLowerCase()) {
    case undefined:
    case '':
    case 'json':
      return 'json';
    case 'string':
      return 'string';
    default:
      throw new TypeError(
        `BFF_USER_CLAIM_VALUES must be json (claim values as issued) or string (Duende's shape: every claim value a string), got ${JSON.stringify(value)}`,
      );
  }
}

/**
 * A top-level (or frame) navigation that wants HTML: `Sec-Fetch-Dest` names a document or frame when
 * the browser sends it (a script's fetch() sends `empty`), and `Accept` names `text/html` explicitly (a
 * fetch() sends `*\/*`, which does not count). `Sec-Fetch-Dest` rather than `Sec-Fetch-Mode`: both say
 * the same in browsers, but server-side HTTP clients (Node's fetch) force the mode to `cors`.
 */
export function isHtmlNavigation(secFetchDest: string | undefined, accept: string | undefined): boolean {
  if (secFetchDest !== undefined && !PAGE_DESTINATIONS.has(secFetchDest)) return false;
  if (!accept) return false;
  return accept.split(',').some((range) => {
    const [type, ...params] = range.split(';').map((part) => part.trim().toLowerCase());
    if (type !== 'text/html') return false;
    const q = params.find((param) => param.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

/** Builds the sample BFF host. */
export function createApp(config: SampleBffConfig = {}): SampleBffApp {
  const baseUrl = config.baseUrl ?? 'http://localhost:3000';
  const apiUrl = (config.apiUrl ?? 'http://127.0.0.1:4001').replace(/\/+$/, '');
  const spaDir = config.spaDir ?? DEFAULT_SPA_DIR;
  const insecureHttp = baseUrl.startsWith('http:');

  const bff = createBff({
    issuer: config.issuer ?? 'http://127.0.0.1:4000',
    clientId: config.clientId ?? 'bff',
    clientSecret: config.clientSecret ?? DEV_CLIENT_SECRET,
    baseUrl,
    sessionSecret: config.sessionSecret ?? DEV_SESSION_SECRET,
    scopes: ['openid', 'profile', 'email', 'offline_access'],
    apiScopes: ['api'],
    // Sign-in failures (a cancel at the IdP, an expired link) land in the SPA, which explains them.
    errorPath: '/',
    ...(config.redis
      ? { store: createRedisStore({ client: config.redis, prefix: config.redisPrefix }) }
      : {}),
    ...(config.refreshMargin !== undefined ? { refreshMargin: config.refreshMargin } : {}),
    ...(config.diagnostics !== undefined ? { diagnostics: config.diagnostics } : {}),
    ...(config.pushedAuthorizationRequests !== undefined
      ? { pushedAuthorizationRequests: config.pushedAuthorizationRequests }
      : {}),
    dpop: config.dpop ?? true,
    ...(config.userClaimValues !== undefined ? { userClaimValues: config.userClaimValues } : {}),
    ...(config.logger ? { logger: config.logger } : {}),
    remoteApis: [{ prefix: '/api/todos', upstream: `${apiUrl}/api/todos`, token: 'user' }],
    ...config.bff,
  });

  const app = express();
  app.disable('x-powered-by');
  app.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.use(
    helmet({
      contentSecurityPolicy: {
        directives: {
          'default-src': ["'self'"],
          'script-src': ["'self'"],
          'style-src': ["'self'"],
          'img-src': ["'self'", 'data:'],
          'connect-src': ["'self'"],
          // The silent-login iframe loads /bff/silent-login (same origin), which then visits the IdP.
          'frame-src': ["'self'", new URL(config.issuer ?? 'http://127.0.0.1:4000').origin],
          'frame-ancestors': ["'self'"],
          'form-action': ["'self'"],
          'base-uri': ["'none'"],
          'object-src': ["'none'"],
          // Over http on localhost, upgrading subresources to https would break the demo.
          'upgrade-insecure-requests': insecureHttp ? null : [],
        },
      },
      strictTransportSecurity: !insecureHttp,
    }),
  );

  app.use(bff.router);

  // A local API: guarded by the BFF (X-CSRF, session), handlers get the user and getAccessToken().
  app.get('/local/whoami', bff.localApi(), async (req, res) => {
    const user = req.bff?.user;
    // getAccessToken() refreshes when needed; the token itself never goes to the browser.
    const token = await req.bff?.getAccessToken();
    res.set('Cache-Control', 'no-store').json({
      sub: user?.sub,
      name: user?.claims.name ?? null,
      email: user?.claims.email ?? null,
      hasAccessToken: typeof token === 'string' && token.length > 0,
    });
  });

  const hasSpa = existsSync(join(spaDir, 'index.html'));
  if (hasSpa) {
    app.use(express.static(spaDir, { index: false, maxAge: '1h' }));
  }
  // SPA fallback: a browser navigation to an HTML page gets index.html (or the minimal page). Anything
  // else that reaches here is unknown, so a script's fetch() to a missing path gets 404 JSON and the SPA
  // sees a 404, not an HTML page it then fails to parse as JSON (Duende's hosts behave the same way).
  app.get(/^\/(?!api\/|bff\/|local\/).*/, (req, res, next) => {
    if (!isHtmlNavigation(req.get('sec-fetch-dest'), req.get('accept'))) return next();
    res.set('Cache-Control', 'no-cache');
    if (hasSpa) return res.sendFile(join(spaDir, 'index.html'));
    res.type('html').send(minimalPage);
  });
  app.use((_req, res) => {
    res.status(404).json({ error: 'not_found' });
  });
  app.use(bff.errorHandler);

  return Object.assign(app, {
    bff,
    close: () => bff.close(),
  }) as SampleBffApp;
}
