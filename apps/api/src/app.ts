// The sample API: per-user todos (user tokens, scope `api`), a machine report (client tokens, scope
// `api.reports`), whoami, an echo route for proxy tests, and a health check. Every `/api` route is
// protected by @gatehouse/api-auth; with a public URL configured, DPoP-bound tokens are accepted
// (and the report can require them). `server.ts` only listens.
import {
  type AccessTokenAuth,
  type AccessTokenValidator,
  createAccessTokenValidator,
  type DPoPPolicy,
  requireAccessToken,
  requireClient,
  requireScope,
  requireUser,
} from '@gatehouse/api-auth';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { parseCreate, parseUpdate, TodoInputError, TodoStore } from './lib/todos.js';

/** Audience of the sample API (the IdP's `SAMPLE_API_AUDIENCE`). */
export const SAMPLE_API_AUDIENCE = 'urn:gatehouse:sample-api';
/** Scope a user token needs for `/api/todos`. */
export const USER_SCOPE = 'api';
/** Scope a client token needs for `/api/reports`. */
export const CLIENT_SCOPE = 'api.reports';

/** Configuration of {@link createApp}. Durations are in seconds. */
export interface ApiConfig {
  /** Issuer of the tokens (metadata is discovered lazily, so the IdP may start later). */
  issuer: string;
  /** This API's audience. Default {@link SAMPLE_API_AUDIENCE}. */
  audience?: string;
  /** Client credentials for RFC 7662 introspection of opaque tokens. Default: off. */
  introspection?: { clientId: string; clientSecret: string };
  /** Clock skew allowed on token times. Default 5. */
  clockTolerance?: number;
  /** Least time between JWKS refetches on an unknown `kid`. Default 30. */
  jwksCooldown?: number;
  /**
   * This API's public base URL as its callers reach it, e.g. `http://127.0.0.1:4001`. DPoP proofs'
   * `htu` are checked against it (never against `Host`). Without it, DPoP is off (Bearer only).
   */
  publicUrl?: string;
  /** `/api/reports` accepts only DPoP-bound tokens (needs `publicUrl`). Default false (DPoP or Bearer). */
  requireDPoP?: boolean;
  /** DPoP policy of `/api/todos`. Default `allowed` with `publicUrl` (DPoP or Bearer), else `disabled`. */
  todosDPoP?: DPoPPolicy;
  /** Require server nonces in DPoP proofs (RFC 9449 §9; one random secret per process). Default false. */
  dpopNonce?: boolean;
  /** A ready validator (tests); replaces issuer/audience/introspection/fetch/publicUrl/dpopNonce. */
  validator?: AccessTokenValidator;
  /** `fetch` for metadata, JWKS and introspection. Default: global fetch. */
  fetch?: typeof fetch;
  /** pino logger for request and rejection lines. Default: none. */
  logger?: Logger;
  /** Most todos one user may keep. Default 200. */
  maxTodosPerUser?: number;
}

/** Headers the echo route repeats (never Authorization or Cookie values). */
const ECHO_HEADERS = [
  'accept',
  'content-type',
  'content-length',
  'user-agent',
  'origin',
  'x-request-id',
  'x-csrf',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'forwarded',
  'via',
];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function problem(res: Response, status: number, error: string, description: string): void {
  res.status(status).json({ error, error_description: description });
}

/** The caller as the token describes it; shared by whoami and echo. Never includes the token. */
function caller(auth: AccessTokenAuth) {
  const { claims } = auth;
  return {
    kind: auth.kind,
    sub: claims.sub,
    client_id: claims.client_id,
    aud: claims.aud,
    scopes: auth.scopes,
    expiresAt: new Date(claims.exp * 1000).toISOString(),
    source: auth.source,
    scheme: auth.dpop ? 'DPoP' : 'Bearer',
    // The thumbprint of the key the token is bound to (cnf.jkt): public, shows sender-constraining.
    ...(auth.dpop ? { jkt: auth.dpop.jkt } : {}),
  };
}

const POLICIES: readonly DPoPPolicy[] = ['required', 'allowed', 'disabled'];

/** Builds the Express app. Nothing listens here; see `server.ts` and `startApi()` in @gatehouse/testing. */
export function createApp(config: ApiConfig): Express {
  if (typeof config !== 'object' || config === null)
    throw new TypeError('createApp: config must be an object');
  if (config.todosDPoP !== undefined && !POLICIES.includes(config.todosDPoP)) {
    throw new TypeError(`createApp: todosDPoP must be one of ${POLICIES.join(', ')}`);
  }
  const dpopWanted =
    config.requireDPoP === true ||
    config.dpopNonce === true ||
    (config.todosDPoP ?? 'disabled') !== 'disabled';
  if (dpopWanted && config.publicUrl === undefined && config.validator?.config.dpop === undefined) {
    throw new TypeError(
      'createApp: DPoP needs publicUrl, the base URL callers use for this API (API_URL, e.g. http://127.0.0.1:4001)',
    );
  }
  const validator =
    config.validator ??
    createAccessTokenValidator({
      issuer: config.issuer,
      audience: config.audience ?? SAMPLE_API_AUDIENCE,
      clockTolerance: config.clockTolerance,
      jwksCooldown: config.jwksCooldown,
      introspection: config.introspection,
      dpop:
        config.publicUrl === undefined
          ? undefined
          : { publicUrl: config.publicUrl, nonce: config.dpopNonce === true },
      fetch: config.fetch,
      logger: config.logger?.child({ component: 'api-auth' }),
    });
  const dpopOn = validator.config.dpop !== undefined;
  const log = config.logger;
  const store = new TodoStore({ maxPerUser: config.maxTodosPerUser ?? 200 });

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  // One line per request: method, path without the query (a stray ?access_token= must not be
  // logged), status, duration and who called. Never headers.
  if (log) {
    app.use((req, res, next) => {
      const start = performance.now();
      // Captured now: routers rewrite req.url while they run; the query is dropped on purpose.
      const path = req.originalUrl.split('?', 1)[0];
      res.on('finish', () => {
        log.info(
          {
            method: req.method,
            path,
            status: res.statusCode,
            ms: Math.round((performance.now() - start) * 10) / 10,
            kind: req.auth?.kind,
            scheme: req.auth ? (req.auth.dpop ? 'DPoP' : 'Bearer') : undefined,
            client_id: req.auth?.claims.client_id,
            sub: req.auth?.claims.sub,
          },
          'request',
        );
      });
      next();
    });
  }

  app.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });

  // Whoami and echo take whatever the validator supports: DPoP or Bearer once a public URL is set.
  const authenticated = requireAccessToken(validator);
  const json = express.json({ limit: '16kb' });
  const needsJson = (req: Request, res: Response, next: NextFunction) => {
    if (!req.is('application/json')) {
      problem(res, 415, 'unsupported_media_type', 'send the body as application/json');
      return;
    }
    json(req, res, next);
  };

  // Todos: user tokens only, scope `api`; each user sees only the todos of their own `sub`.
  const todos = express.Router();
  const todosPolicy = config.todosDPoP ?? (dpopOn ? 'allowed' : 'disabled');
  todos.use(requireAccessToken(validator, { dpop: todosPolicy }), requireUser(), requireScope(USER_SCOPE));
  todos.get('/', (req, res) => {
    res.json(store.list(req.auth!.claims.sub));
  });
  todos.post('/', needsJson, (req, res) => {
    const todo = store.create(req.auth!.claims.sub, parseCreate(req.body));
    res.status(201).location(`/api/todos/${todo.id}`).json(todo);
  });
  todos.patch('/:id', needsJson, (req, res) => {
    const id = String(req.params.id);
    const patch = parseUpdate(req.body);
    const todo = UUID.test(id) ? store.update(req.auth!.claims.sub, id, patch) : undefined;
    // Another user's id looks exactly like a missing one: 404, never 403, so ids do not leak.
    if (!todo) return problem(res, 404, 'not_found', 'no such todo');
    res.json(todo);
  });
  todos.delete('/:id', (req, res) => {
    const id = String(req.params.id);
    if (!UUID.test(id) || !store.remove(req.auth!.claims.sub, id)) {
      return problem(res, 404, 'not_found', 'no such todo');
    }
    res.status(204).end();
  });
  app.use('/api/todos', todos);

  // Reports: machine-to-machine only (client credentials), scope `api.reports`; with requireDPoP the
  // token must be DPoP-bound and come with a proof, so a leaked worker token alone is useless.
  const reportsPolicy = config.requireDPoP === true ? 'required' : dpopOn ? 'allowed' : 'disabled';
  const reportsAuth = requireAccessToken(validator, { dpop: reportsPolicy });
  app.get('/api/reports', reportsAuth, requireClient(), requireScope(CLIENT_SCOPE), (req, res) => {
    res.json({
      generatedAt: new Date().toISOString(),
      requestedBy: req.auth!.claims.client_id,
      ...store.totals(),
    });
  });

  // Whoami: any valid token, user or client.
  app.get('/api/whoami', authenticated, (req, res) => {
    res.json(caller(req.auth!));
  });

  // Echo (user or none): what reached the API, for proxy tests. Tokens and cookies are never echoed.
  app.all(
    '/api/echo{/*rest}',
    requireAccessToken(validator, { optional: true }),
    express.raw({ type: () => true, limit: '64kb' }),
    (req, res) => {
      const headers: Record<string, string | string[]> = {};
      for (const name of ECHO_HEADERS) {
        const value = req.headers[name];
        if (value !== undefined) headers[name] = value;
      }
      const body = Buffer.isBuffer(req.body) ? req.body.toString('utf8') : '';
      res.set('cache-control', 'no-store').json({
        method: req.method,
        path: req.path,
        query: Object.fromEntries(new URL(req.originalUrl, 'http://x').searchParams),
        headers,
        headerNames: Object.keys(req.headers).sort(),
        authorizationScheme: req.headers.authorization?.split(' ')[0],
        auth: req.auth ? caller(req.auth) : null,
        body,
      });
    },
  );

  app.use((_req, res) => {
    problem(res, 404, 'not_found', 'no such route');
  });

  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (error instanceof TodoInputError) return problem(res, 400, 'invalid_request', error.message);
    const status = (error as { status?: unknown }).status;
    const type = (error as { type?: unknown }).type;
    if (type === 'entity.parse.failed')
      return problem(res, 400, 'invalid_request', 'the body is not valid JSON');
    if (type === 'entity.too.large') return problem(res, 413, 'payload_too_large', 'the body is too large');
    if (typeof status === 'number' && status >= 400 && status < 500) {
      return problem(res, status, 'invalid_request', 'the request could not be read');
    }
    log?.error(
      { err: error instanceof Error ? { message: error.message, name: error.name } : String(error) },
      'unhandled error',
    );
    problem(res, 500, 'server_error', 'something went wrong');
  });

  return app;
}
