import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { resolve } from 'node:path';
import {
  importJWK,
  type JWK,
  type JWSHeaderParameters,
  type JWTHeaderParameters,
  type JWTPayload,
  SignJWT,
} from 'jose';
import Provider, {
  type Account,
  type ClientMetadata,
  type Configuration,
  errors,
  type Grant,
  type KoaContextWithOIDC,
  type ResourceServer,
} from 'oidc-provider';
import { checkPassword, findUser } from './lib/accounts.js';
import { IdpStore } from './lib/adapter.js';
import { createDemoPages, DEMO_CLIENT_ID } from './lib/demo.js';
import { IdpError } from './lib/errors.js';
import { autoSubmitPage, loginPage, messagePage } from './lib/html.js';
import {
  generateSigningJwk,
  isJwks,
  loadOrCreateCookieKeys,
  loadOrCreateSigningKeys,
  type PrivateJwks,
  publicJwk,
  saveSigningKeys,
} from './lib/keys.js';

export { DEMO_USERS, type DemoUser, type DemoUserClaims } from './lib/accounts.js';
export { IdpError } from './lib/errors.js';
export { LOCK_FILE, STORE_FILE } from './lib/journal.js';
export {
  COOKIE_KEYS_FILE,
  generateSigningJwk,
  loadOrCreateSigningKeys,
  type PrivateJwks,
  publicJwk,
  SIGNING_KEYS_FILE,
} from './lib/keys.js';
export type { ClientMetadata, JWK };

/** Audience (resource indicator) of the sample API; every access token the IdP issues is for it. */
export const SAMPLE_API_AUDIENCE = 'urn:gatehouse:sample-api';
/** Scope of user access tokens (code flow). */
export const USER_API_SCOPE = 'api';
/** Scope of client-credentials access tokens (workers, the BFF's own calls). */
export const CLIENT_API_SCOPE = 'api.reports';

/** Client ids registered by default. */
export const DEFAULT_CLIENT_IDS = Object.freeze([
  'bff',
  'worker',
  'worker-jwt',
  'api',
  DEMO_CLIENT_ID,
] as const);

/** Dev-only default client secrets (override with env `BFF_CLIENT_SECRET` etc. in server.ts). */
export const DEV_CLIENT_SECRETS = Object.freeze({
  bff: 'bff-secret',
  worker: 'worker-secret',
  api: 'api-secret',
});

/** The subset of a pino logger the IdP uses. Never receives tokens, secrets or passwords. */
export interface IdpLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Options of {@link createIdp}. Durations are in seconds. */
export interface IdpOptions {
  /** Issuer URL, origin only (no path), e.g. `http://127.0.0.1:4000`. */
  issuer: string;
  /**
   * Origin of the sample BFF. The `bff` client gets redirect URI `${bff}/bff/callback`, post-logout
   * URIs `${bff}/` and `${bff}/bff/signed-out`, back-channel logout URI `${bff}/bff/backchannel`
   * (with `sid` required). Default `http://localhost:3000`.
   */
  bffBaseUrl?: string;
  /** Client secrets. Defaults: {@link DEV_CLIENT_SECRETS} (development only). */
  clientSecrets?: { bff?: string; worker?: string; api?: string };
  /** Public keys of the `worker-jwt` client (private_key_jwt). Without them that client is not registered. */
  workerJwks?: { keys: JWK[] };
  /** More clients (oidc-provider client metadata); all are treated as first-party (no consent page). */
  extraClients?: ClientMetadata[];
  /** Access-token lifetime. Default 300. */
  accessTokenTtl?: number;
  /** Refresh-token lifetime. Default 86 400 (1 day). */
  refreshTokenTtl?: number;
  /** ID-token lifetime. Default 3 600. */
  idTokenTtl?: number;
  /** IdP session lifetime. Default 86 400. */
  sessionTtl?: number;
  /** Rotate refresh tokens on every use; reuse of a rotated token revokes the grant. Default true. */
  rotateRefreshTokens?: boolean;
  /** Access-token format for the sample API. `opaque` tokens can be introspected. Default `jwt`. */
  accessTokenFormat?: 'jwt' | 'opaque';
  /**
   * Registers the `bff` client with `require_pushed_authorization_requests: true`: its
   * authorization requests must then come as a `request_uri` from the PAR endpoint (`/request`).
   * PAR itself is always available. Default false.
   * @see https://www.rfc-editor.org/rfc/rfc9126#section-6
   */
  requirePushedAuthorizationRequests?: boolean;
  /** Private signing keys (JWKS). Default: loaded from / generated into `keysDir`, else generated in memory. */
  signingKeys?: { keys: JWK[] };
  /** Folder that keeps generated signing keys between restarts (`idp-signing-keys.json`). Default: `dataDir`. */
  keysDir?: string;
  /**
   * Folder that makes the IdP survive a crash or `SIGKILL`: every record oidc-provider stores
   * (grants, sessions, refresh tokens, opaque access tokens, codes, interactions…) is written
   * through to `idp-store.jsonl` before the response that hands it out, the cookie keys to
   * `idp-cookie-keys.json`, and the signing keys to `idp-signing-keys.json` (unless `signingKeys`
   * or `keysDir` say otherwise). A new IdP on the same folder, issuer and clients carries on where
   * the old one stopped. One running IdP per folder (`idp-store.lock`). Default: memory only.
   */
  dataDir?: string;
  /**
   * Algorithm of generated signing keys, and what the IdP signs ID tokens, logout tokens and JWT
   * access tokens with (also the `bff` client's registered `id_token_signed_response_alg`).
   * Default `RS256`; `ES256` and `PS256` let tests run an OP that does not sign with RS256.
   */
  signingAlg?: SigningAlg;
  /** pino-like logger. Default: silent. */
  logger?: IdpLogger;
}

/** What {@link createIdp} resolves options to: validated once, frozen. */
export interface ResolvedIdpConfig {
  readonly issuer: string;
  readonly bffBaseUrl: string;
  readonly clientSecrets: Readonly<{ bff: string; worker: string; api: string }>;
  readonly workerJwks: { keys: JWK[] } | undefined;
  readonly extraClients: readonly ClientMetadata[];
  readonly accessTokenTtl: number;
  readonly refreshTokenTtl: number;
  readonly idTokenTtl: number;
  readonly sessionTtl: number;
  readonly rotateRefreshTokens: boolean;
  readonly accessTokenFormat: 'jwt' | 'opaque';
  readonly requirePushedAuthorizationRequests: boolean;
  readonly signingKeys: { keys: JWK[] } | undefined;
  readonly keysDir: string | undefined;
  readonly dataDir: string | undefined;
  readonly signingAlg: SigningAlg;
  readonly logger: IdpLogger;
}

/** Signing algorithms the sample IdP can generate keys for. */
export type SigningAlg = 'RS256' | 'ES256' | 'PS256';
const SIGNING_ALGS: readonly SigningAlg[] = ['RS256', 'ES256', 'PS256'];

/** Result of {@link Idp.endSessions}. */
export interface EndSessionsResult {
  /** IdP sessions ended. */
  sessions: number;
  /** Clients whose back-channel logout URI answered 200/204. */
  notified: string[];
  /** Clients whose back-channel logout delivery failed (message only). */
  failed: Array<{ clientId: string; error: string }>;
}

/** A running sample IdP (not yet listening: mount {@link Idp.handler} on an HTTP server). */
export interface Idp {
  readonly issuer: string;
  readonly config: ResolvedIdpConfig;
  /** The current oidc-provider instance (replaced by {@link Idp.rotateSigningKey}; listeners are carried over). */
  readonly provider: Provider;
  /** Login pages + `GET /health` + the provider's endpoints. */
  readonly handler: RequestListener;
  /** Public JWKS as published at `jwks_uri` (newest key first). */
  publicJwks(): { keys: JWK[] };
  /** A new key signs from now on; the previous keys stay published (the newest three are kept). */
  rotateSigningKey(): Promise<void>;
  /**
   * Signs `payload` as is (no claims added) with the current key, or with the stored key whose
   * `kid` is `header.kid`. Header members override the defaults (`alg` of the key, `kid`), so a
   * test can forge tokens with a genuine signature but bad claims, a bad `typ` or an unknown `kid`.
   */
  sign(payload: JWTPayload, header?: Partial<JWSHeaderParameters>): Promise<string>;
  /** Token-endpoint requests seen, by `grant_type` (all when omitted). */
  readonly counters: { token(grantType?: string): number; reset(): void };
  /**
   * Ends every IdP session of `accountId` as an administrator would: sends a back-channel logout
   * token to every client of the session that registered a back-channel logout URI, revokes the
   * grants, deletes the sessions.
   */
  endSessions(accountId: string): Promise<EndSessionsResult>;
  /**
   * Points the `bff` client at another origin (redirect, post-logout and back-channel URIs), for
   * tests that learn the BFF's port only after the IdP started. Sessions and tokens survive.
   */
  setBffBaseUrl(url: string): void;
  /** Registers one more (first-party) client on the running IdP. */
  addClient(metadata: ClientMetadata): void;
  /**
   * Stops the background sweep of expired records and, with `dataDir`, closes the store file and
   * releases the folder. Saves nothing: with `dataDir` every change is on disk when it happens.
   */
  close(): void;
}

const OPTION_KEYS = new Set<string>([
  'issuer',
  'bffBaseUrl',
  'clientSecrets',
  'workerJwks',
  'extraClients',
  'accessTokenTtl',
  'refreshTokenTtl',
  'idTokenTtl',
  'sessionTtl',
  'rotateRefreshTokens',
  'accessTokenFormat',
  'requirePushedAuthorizationRequests',
  'signingKeys',
  'keysDir',
  'dataDir',
  'signingAlg',
  'logger',
]);

const silentLogger: IdpLogger = { debug() {}, info() {}, warn() {}, error() {} };

function originOnly(name: string, value: unknown, fallback?: string): string {
  const raw = value ?? fallback;
  if (typeof raw !== 'string')
    throw new TypeError(`createIdp: ${name} must be a URL string such as http://127.0.0.1:4000`);
  const url = URL.parse(raw);
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new TypeError(`createIdp: ${name} must be an http(s) URL, got ${JSON.stringify(raw)}`);
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash || url.username) {
    throw new TypeError(
      `createIdp: ${name} must be an origin without path, query or credentials, e.g. ${url.origin}`,
    );
  }
  return url.origin;
}

function seconds(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(
      `createIdp: ${name} is in seconds and must be a positive integer, got ${String(value)}`,
    );
  }
  return value;
}

function secret(name: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(`createIdp: clientSecrets.${name} must be a non-empty string`);
  }
  return value;
}

/** Validates {@link IdpOptions} once; every mistake is a TypeError that says how to fix it. */
export function resolveIdpOptions(options: IdpOptions): ResolvedIdpConfig {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('createIdp: options must be an object with at least { issuer }');
  }
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) {
      throw new TypeError(
        `createIdp: unknown option "${key}"; known options: ${[...OPTION_KEYS].join(', ')}`,
      );
    }
  }
  const clientSecrets = options.clientSecrets ?? {};
  if (typeof clientSecrets !== 'object' || clientSecrets === null) {
    throw new TypeError('createIdp: clientSecrets must be an object { bff?, worker?, api? }');
  }
  for (const key of Object.keys(clientSecrets)) {
    if (!['bff', 'worker', 'api'].includes(key)) {
      throw new TypeError(`createIdp: unknown clientSecrets.${key}; known: bff, worker, api`);
    }
  }
  if (options.workerJwks !== undefined) {
    if (!isJwks(options.workerJwks) || options.workerJwks.keys.length === 0) {
      throw new TypeError(
        'createIdp: workerJwks must be a JWKS { keys: [publicJwk, …] } with at least one key',
      );
    }
    if (options.workerJwks.keys.some((k) => 'd' in k)) {
      throw new TypeError('createIdp: workerJwks must hold public keys only; pass publicJwk(privateJwk)');
    }
  }
  if (options.signingKeys !== undefined) {
    if (!isJwks(options.signingKeys) || options.signingKeys.keys.length === 0) {
      throw new TypeError('createIdp: signingKeys must be a private JWKS { keys: [privateJwk, …] }');
    }
    if (options.signingKeys.keys.some((k) => !('d' in k))) {
      throw new TypeError(
        'createIdp: signingKeys must hold private keys (with "d"); generate one with generateSigningJwk()',
      );
    }
  }
  const extraClients = options.extraClients ?? [];
  if (!Array.isArray(extraClients))
    throw new TypeError('createIdp: extraClients must be an array of client metadata');
  const ids = new Set<string>(DEFAULT_CLIENT_IDS);
  for (const client of extraClients) {
    if (typeof client?.client_id !== 'string' || client.client_id === '') {
      throw new TypeError('createIdp: every extraClients entry needs a client_id');
    }
    if (ids.has(client.client_id)) {
      throw new TypeError(
        `createIdp: extraClients has a duplicate client_id "${client.client_id}"; pick another id`,
      );
    }
    ids.add(client.client_id);
  }
  const format = options.accessTokenFormat ?? 'jwt';
  if (format !== 'jwt' && format !== 'opaque') {
    throw new TypeError(`createIdp: accessTokenFormat must be 'jwt' or 'opaque', got ${String(format)}`);
  }
  if (options.rotateRefreshTokens !== undefined && typeof options.rotateRefreshTokens !== 'boolean') {
    throw new TypeError('createIdp: rotateRefreshTokens must be a boolean');
  }
  const requirePar = options.requirePushedAuthorizationRequests ?? false;
  if (typeof requirePar !== 'boolean') {
    throw new TypeError('createIdp: requirePushedAuthorizationRequests must be a boolean');
  }
  if (options.keysDir !== undefined && (typeof options.keysDir !== 'string' || options.keysDir === '')) {
    throw new TypeError('createIdp: keysDir must be a folder path');
  }
  if (options.dataDir !== undefined && (typeof options.dataDir !== 'string' || options.dataDir === '')) {
    throw new TypeError(
      'createIdp: dataDir must be a folder path (or leave it out to keep everything in memory)',
    );
  }
  const dataDir = options.dataDir === undefined ? undefined : resolve(options.dataDir);
  const keysDir = options.keysDir === undefined ? dataDir : resolve(options.keysDir);
  const signingAlg = options.signingAlg ?? 'RS256';
  if (!SIGNING_ALGS.includes(signingAlg)) {
    throw new TypeError(
      `createIdp: signingAlg must be one of ${SIGNING_ALGS.join(', ')}, got ${String(options.signingAlg)}`,
    );
  }
  const logger = options.logger ?? silentLogger;
  for (const level of ['debug', 'info', 'warn', 'error'] as const) {
    if (typeof logger[level] !== 'function') {
      throw new TypeError(`createIdp: logger.${level} must be a function (pass a pino logger)`);
    }
  }
  return Object.freeze({
    issuer: originOnly('issuer', options.issuer),
    bffBaseUrl: originOnly('bffBaseUrl', options.bffBaseUrl, 'http://localhost:3000'),
    clientSecrets: Object.freeze({
      bff: secret('bff', clientSecrets.bff, DEV_CLIENT_SECRETS.bff),
      worker: secret('worker', clientSecrets.worker, DEV_CLIENT_SECRETS.worker),
      api: secret('api', clientSecrets.api, DEV_CLIENT_SECRETS.api),
    }),
    workerJwks: options.workerJwks,
    extraClients: Object.freeze([...extraClients]),
    accessTokenTtl: seconds('accessTokenTtl', options.accessTokenTtl, 300),
    refreshTokenTtl: seconds('refreshTokenTtl', options.refreshTokenTtl, 86_400),
    idTokenTtl: seconds('idTokenTtl', options.idTokenTtl, 3_600),
    sessionTtl: seconds('sessionTtl', options.sessionTtl, 86_400),
    rotateRefreshTokens: options.rotateRefreshTokens ?? true,
    accessTokenFormat: format,
    requirePushedAuthorizationRequests: requirePar,
    signingKeys: options.signingKeys,
    keysDir,
    dataDir,
    signingAlg,
    logger,
  });
}

/** The default clients of the sample suite (see the README's table). */
export function defaultClients(config: ResolvedIdpConfig): ClientMetadata[] {
  const bff = config.bffBaseUrl;
  const clients: ClientMetadata[] = [
    {
      client_id: 'bff',
      client_name: 'Gatehouse sample app',
      client_secret: config.clientSecrets.bff,
      token_endpoint_auth_method: 'client_secret_basic',
      // client_credentials too: the BFF also fetches tokens for its own (machine) API calls.
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      redirect_uris: [`${bff}/bff/callback`],
      post_logout_redirect_uris: [`${bff}/`, `${bff}/bff/signed-out`],
      backchannel_logout_uri: `${bff}/bff/backchannel`,
      backchannel_logout_session_required: true,
      scope: `openid profile email offline_access ${USER_API_SCOPE} ${CLIENT_API_SCOPE}`,
      id_token_signed_response_alg: config.signingAlg,
      ...(config.requirePushedAuthorizationRequests ? { require_pushed_authorization_requests: true } : {}),
    },
    {
      client_id: 'worker',
      client_name: 'Gatehouse sample worker',
      client_secret: config.clientSecrets.worker,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: CLIENT_API_SCOPE,
    },
    {
      client_id: 'api',
      client_name: 'Gatehouse sample API (introspection)',
      client_secret: config.clientSecrets.api,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    },
  ];
  clients.push({
    // Public client behind the IdP's own start page ("Try signing in").
    client_id: DEMO_CLIENT_ID,
    client_name: 'Sample IdP start page',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [`${config.issuer}/demo/callback`],
    post_logout_redirect_uris: [`${config.issuer}/`],
    scope: 'openid profile email',
  });
  if (config.workerJwks) {
    clients.push({
      client_id: 'worker-jwt',
      client_name: 'Gatehouse sample worker (private_key_jwt)',
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: config.workerJwks,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: CLIENT_API_SCOPE,
    });
  }
  return clients;
}

/**
 * oidc-provider drops `offline_access` from an authorization request unless it carries
 * `prompt=consent` (OIDC Core §11). Our clients are first-party and never see a consent page, so
 * {@link recordOfflineAccess} records "offline_access was requested" in this private parameter
 * (stored with the interaction and with a pushed request), and the grant, `expiresWithSession` and
 * `issueRefreshToken` use it.
 */
const OFFLINE_PARAM = 'gatehouse_offline_access';

/**
 * Validator of {@link OFFLINE_PARAM} (oidc-provider runs it on every authorization and PAR request,
 * present or not, after its own scope checks). It sets the marker from the scope the client really
 * sent (query of `GET /auth`, body of a PAR request), so a value the client sends itself
 * is overwritten. At `/auth` with a `request_uri` the parameters are the pushed ones, where this
 * already ran, so the marker is kept as pushed.
 */
function recordOfflineAccess(ctx: KoaContextWithOIDC): void {
  if (ctx.oidc.route === 'authorization' && ctx.oidc.entities.PushedAuthorizationRequest) return;
  const sent = ctx.method === 'GET' || ctx.method === 'HEAD' ? ctx.query : ctx.oidc.body;
  const scope = typeof sent?.scope === 'string' ? sent.scope.split(' ') : [];
  (ctx.oidc.params as Record<string, unknown>)[OFFLINE_PARAM] = scope.includes('offline_access')
    ? '1'
    : undefined;
}

const OIDC_SCOPES = new Set(['openid', 'offline_access', 'profile', 'email']);

function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/**
 * oidc-provider refuses outgoing requests to loopback/private addresses (SSRF protection, via an
 * undici `dispatcher` it sets before calling this). The sample BFF's back-channel logout URI is on
 * loopback (`http://localhost:3000/bff/backchannel`), so this development IdP drops that guard for
 * loopback hosts only; every other destination keeps oidc-provider's protection. A production OP
 * must not do this.
 */
const loopbackFriendlyFetch = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
  const href = input instanceof Request ? input.url : String(input);
  const url = URL.parse(href);
  if (url && isLoopbackHost(url.hostname) && init) {
    const { dispatcher: _ssrfGuard, ...rest } = init as RequestInit & { dispatcher?: unknown };
    return globalThis.fetch(input, rest);
  }
  return globalThis.fetch(input, init);
};

const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  // No form-action: Chrome applies it to the redirects after the login POST, which leave for the client.
  'content-security-policy':
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, PAGE_HEADERS);
  res.end(html);
}

const MAX_FORM_BYTES = 16 * 1024;

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const type = req.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw new IdpError('ERR_IDP_BAD_FORM', 415, 'expected an application/x-www-form-urlencoded form');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_FORM_BYTES) throw new IdpError('ERR_IDP_BAD_FORM', 413, 'form too large');
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const SESSION_COOKIE = /^_session(\.sig)?=/;

/**
 * Silent login (prompt=none) loads the IdP in an iframe of the BFF's page, a cross-site request,
 * so the IdP session cookie must be `SameSite=None; Secure` to be sent. Koa refuses to set a Secure
 * cookie on a plain-http request, and on a loopback issuer the samples run on http (which browsers
 * and TestBrowser treat as a secure context, so they keep Secure cookies from it). So the session
 * cookie is set as Lax and rewritten here on its way out. Only used for https or loopback issuers.
 */
function crossSiteSessionCookie(res: ServerResponse): void {
  const setHeader = res.setHeader.bind(res);
  res.setHeader = (name: string, value: number | string | readonly string[]) => {
    if (name.toLowerCase() === 'set-cookie') {
      const rewrite = (cookie: string) =>
        SESSION_COOKIE.test(cookie)
          ? `${cookie.replace(/;\s*samesite=\w+/i, '')}; samesite=none; secure`
          : cookie;
      value = Array.isArray(value) ? value.map(rewrite) : typeof value === 'string' ? rewrite(value) : value;
    }
    return setHeader(name, value);
  };
}

function audienceIncludes(aud: unknown, wanted: string): boolean {
  return aud === wanted || (Array.isArray(aud) && aud.includes(wanted));
}

interface ClientWithBackchannel {
  clientId: string;
  backchannelLogoutUri?: string | undefined;
  // Public method of oidc-provider's Client model that @types/oidc-provider does not declare.
  backchannelLogout(sub: string, sid: string | undefined): Promise<void>;
}

/**
 * Creates the sample OpenID provider: oidc-provider 9 configured for the Gatehouse samples (clients
 * `bff`, `worker`, `worker-jwt`, `api`, `idp-demo`; users alice/bob; RFC 9068 JWT access tokens for
 * {@link SAMPLE_API_AUDIENCE}; refresh-token rotation; revocation; introspection; RP-initiated and
 * back-channel logout) plus its own login page.
 *
 * @see https://github.com/panva/node-oidc-provider
 */
export async function createIdp(options: IdpOptions): Promise<Idp> {
  // `let`: setBffBaseUrl/addClient re-resolve it; every closure below reads the current value.
  let config = resolveIdpOptions(options);
  const { logger } = config;
  let jwks: PrivateJwks = config.signingKeys
    ? structuredClone(config.signingKeys)
    : config.keysDir
      ? await loadOrCreateSigningKeys(config.keysDir, config.signingAlg)
      : { keys: [await generateSigningJwk(config.signingAlg)] };
  for (const key of jwks.keys) key.alg ??= config.signingAlg;

  const issuerUrl = new URL(config.issuer);
  const crossSiteSession = issuerUrl.protocol === 'https:' || isLoopbackHost(issuerUrl.hostname);

  // Persistent cookie keys: a restarted IdP must still accept the session cookies browsers hold.
  const cookieKeys = config.dataDir
    ? await loadOrCreateCookieKeys(config.dataDir)
    : [randomBytes(32).toString('base64url')];
  const store = new IdpStore({ dataDir: config.dataDir, logger });
  const addedClients: ClientMetadata[] = [];
  let clients = [...defaultClients(config), ...config.extraClients];
  const tokenCounts = new Map<string, number>();
  const internalListeners = new WeakSet<(...args: unknown[]) => void>();

  const resourceServer = (ctx: KoaContextWithOIDC): ResourceServer => {
    const params = ctx.oidc.params as { grant_type?: unknown } | undefined;
    const isClientToken = params?.grant_type === 'client_credentials';
    return {
      // User tokens carry `api`, client tokens `api.reports`: one scope set per kind of token.
      scope: isClientToken ? CLIENT_API_SCOPE : USER_API_SCOPE,
      audience: SAMPLE_API_AUDIENCE,
      accessTokenTTL: config.accessTokenTtl,
      accessTokenFormat: config.accessTokenFormat,
      ...(config.accessTokenFormat === 'jwt' ? { jwt: { sign: { alg: config.signingAlg } } } : {}),
    };
  };

  const loadExistingGrant = async (ctx: KoaContextWithOIDC): Promise<Grant | undefined> => {
    const { client, session } = ctx.oidc;
    const accountId = session?.accountId;
    if (!client || !session || !accountId) return undefined;
    const grantId =
      (ctx.oidc.result as { consent?: { grantId?: string } } | undefined)?.consent?.grantId ??
      session.grantIdFor(client.clientId);
    let grant = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
    if (grant && grant.accountId !== accountId) grant = undefined;
    // Every client of this IdP is first-party: grant what it asks for instead of showing a
    // consent page (including offline_access, when OFFLINE_PARAM says it was requested).
    grant ??= new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId });
    const requested = String((ctx.oidc.params as { scope?: unknown } | undefined)?.scope ?? '')
      .split(' ')
      .filter(Boolean);
    const oidcScopes = requested.filter((s) => OIDC_SCOPES.has(s));
    if ((ctx.oidc.params as Record<string, unknown>)[OFFLINE_PARAM] === '1')
      oidcScopes.push('offline_access');
    if (oidcScopes.length > 0) grant.addOIDCScope(oidcScopes.join(' '));
    for (const indicator of Object.keys(ctx.oidc.resourceServers ?? {})) {
      const rsScopes = requested.filter((s) => s === USER_API_SCOPE);
      if (indicator === SAMPLE_API_AUDIENCE && rsScopes.length > 0)
        grant.addResourceScope(indicator, rsScopes.join(' '));
    }
    await grant.save();
    return grant;
  };

  const configuration = (keys: PrivateJwks): Configuration => ({
    adapter: store.factory,
    clients,
    jwks: structuredClone(keys) as Configuration['jwks'],
    // `long` covers the IdP session cookie; see crossSiteSessionCookie for its SameSite.
    cookies: {
      keys: cookieKeys,
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    findAccount: async (_ctx, sub): Promise<Account | undefined> => {
      const user = findUser(sub);
      if (!user) return undefined;
      return { accountId: sub, claims: async () => ({ sub, ...user.claims }) };
    },
    claims: {
      openid: ['sub'],
      profile: ['name', 'given_name', 'family_name'],
      email: ['email', 'email_verified'],
    },
    // The API scopes are listed too: oidc-provider only accepts client `scope` metadata made of these.
    scopes: [...OIDC_SCOPES, USER_API_SCOPE, CLIENT_API_SCOPE],
    // Put the profile/email claims in the ID token: the access token is for the API, not UserInfo.
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    pkce: { required: () => true },
    clientDefaults: { id_token_signed_response_alg: config.signingAlg, grant_types: ['authorization_code'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // The sample API (client `api`) may introspect tokens issued for it; others only their own.
        allowedPolicy: async (_ctx, client, token) =>
          token.clientId === client.clientId ||
          (client.clientId === 'api' &&
            audienceIncludes((token as { aud?: unknown }).aud, SAMPLE_API_AUDIENCE)),
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf ?? SAMPLE_API_AUDIENCE,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, indicator) => {
          if (indicator !== SAMPLE_API_AUDIENCE) throw new errors.InvalidTarget();
          return resourceServer(ctx);
        },
      },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          if (ctx.oidc.client) {
            // First-party client: no "do you want to sign out?" page; the form posts itself.
            const auto = form
              .replace('<form ', '<form data-autosubmit ')
              .replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>');
            ctx.type = 'html';
            ctx.body = autoSubmitPage('Signing you out', auto);
            return;
          }
          ctx.type = 'html';
          ctx.body = messagePage('Sign out?', ['Sign out of the Gatehouse sample IdP?']).replace(
            '</main>',
            `${form.replace('</form>', '<input type="hidden" name="logout" value="yes"/><button type="submit">Sign out</button></form>')}</main>`,
          );
        },
        postLogoutSuccessSource: async (ctx) => {
          ctx.type = 'html';
          ctx.body = messagePage('Signed out', ['You are signed out of the Gatehouse sample IdP.']);
        },
      },
      backchannelLogout: { enabled: true },
    },
    interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
    loadExistingGrant,
    // See OFFLINE_PARAM: offline_access survives as this marker; the code remembers it as
    // "does not expire with the session" (oidc-provider then leaves `expiresWithSession` unset),
    // which is what decides whether a refresh token is issued.
    extraParams: { [OFFLINE_PARAM]: recordOfflineAccess },
    expiresWithSession: async (ctx, code) =>
      !(
        code.scopes.has('offline_access') ||
        (ctx.oidc.params as Record<string, unknown>)[OFFLINE_PARAM] === '1'
      ),
    issueRefreshToken: async (_ctx, client, code) =>
      client.grantTypeAllowed('refresh_token') &&
      (code.scopes.has('offline_access') ||
        (code as { expiresWithSession?: boolean }).expiresWithSession !== true),
    rotateRefreshToken: config.rotateRefreshTokens,
    ttl: {
      AccessToken: config.accessTokenTtl,
      ClientCredentials: config.accessTokenTtl,
      AuthorizationCode: 60,
      IdToken: config.idTokenTtl,
      RefreshToken: config.refreshTokenTtl,
      Interaction: 600,
      Session: config.sessionTtl,
      Grant: Math.max(config.refreshTokenTtl, config.sessionTtl),
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = messagePage('Something went wrong', ['The request could not be completed.'], {
        error: out.error,
        error_description: out.error_description,
      });
    },
    fetch: loopbackFriendlyFetch,
  });

  // oidc-provider's typed event overloads do not cover a generic helper; Provider is an EventEmitter.
  const addInternal = <A extends unknown[]>(p: Provider, event: string, listener: (...args: A) => void) => {
    const untyped = listener as unknown as (...args: unknown[]) => void;
    internalListeners.add(untyped);
    (p as unknown as EventEmitter).on(event, untyped);
  };

  const build = (
    keys: PrivateJwks,
    previous?: Provider,
  ): { provider: Provider; callback: RequestListener } => {
    const p = new Provider(config.issuer, configuration(keys));
    p.use(async (ctx, next) => {
      await next();
      if (ctx.oidc?.route === 'token') {
        const params = (ctx.oidc.params ?? ctx.oidc.body) as { grant_type?: unknown } | undefined;
        const grantType = typeof params?.grant_type === 'string' ? params.grant_type : 'unknown';
        tokenCounts.set(grantType, (tokenCounts.get(grantType) ?? 0) + 1);
      }
    });
    // Log outcomes, never artefacts: error codes and client ids, not tokens or request bodies.
    addInternal(p, 'server_error', (_ctx: unknown, err: Error) =>
      logger.error({ err: err.message }, 'idp server error'),
    );
    // Expected outcomes of silent login (prompt=none) are not warnings.
    const routine = new Set(['login_required', 'interaction_required', 'consent_required']);
    for (const event of ['grant.error', 'authorization.error', 'introspection.error', 'revocation.error']) {
      addInternal(p, event, (ctx: KoaContextWithOIDC, err: errors.OIDCProviderError) => {
        const fields = {
          error: err.error,
          error_description: err.error_description,
          client_id: ctx.oidc?.client?.clientId,
        };
        if (routine.has(err.error)) logger.info(fields, event);
        else logger.warn(fields, event);
      });
    }
    addInternal(p, 'grant.success', (ctx: KoaContextWithOIDC) => {
      const params = ctx.oidc.params as { grant_type?: unknown } | undefined;
      logger.info({ grant_type: params?.grant_type, client_id: ctx.oidc.client?.clientId }, 'token issued');
    });
    addInternal(p, 'authorization.success', (ctx: KoaContextWithOIDC) =>
      logger.info(
        { client_id: ctx.oidc.client?.clientId, sub: ctx.oidc.session?.accountId },
        'authorization granted',
      ),
    );
    addInternal(p, 'backchannel.success', (_ctx: unknown, client: { clientId: string }) =>
      logger.info({ client_id: client.clientId }, 'back-channel logout delivered'),
    );
    addInternal(p, 'backchannel.error', (_ctx: unknown, err: Error, client: { clientId: string }) =>
      logger.warn({ client_id: client.clientId, err: err.message }, 'back-channel logout failed'),
    );
    addInternal(p, 'end_session.success', (ctx: KoaContextWithOIDC) =>
      logger.info({ client_id: ctx.oidc?.client?.clientId }, 'signed out'),
    );
    if (previous) {
      // Keep the listeners tests and apps attached to the old instance.
      for (const name of previous.eventNames()) {
        for (const listener of previous.rawListeners(name)) {
          const untyped = listener as (...args: unknown[]) => void;
          if (!internalListeners.has(untyped)) (p as unknown as EventEmitter).on(name, untyped);
        }
      }
    }
    return { provider: p, callback: p.callback() };
  };

  let current: ReturnType<typeof build>;
  try {
    current = build(jwks);
  } catch (error) {
    store.close(); // releases the data folder's lock
    throw error;
  }
  const sweeper = setInterval(() => store.sweep(), 60_000);
  sweeper.unref();

  const interactionRoute = /^\/interaction\/([A-Za-z0-9_-]{1,64})(?:\/(login|abort))?$/;

  async function interaction(
    req: IncomingMessage,
    res: ServerResponse,
    uid: string,
    action?: string,
  ): Promise<void> {
    const { provider } = current;
    const details = await provider.interactionDetails(req, res).catch((error: unknown) => {
      throw new IdpError(
        'ERR_IDP_INTERACTION_EXPIRED',
        400,
        'This sign-in request has expired or was opened in another browser. Go back to the app and sign in again.',
        { cause: error },
      );
    });
    if (details.uid !== uid)
      throw new IdpError('ERR_IDP_INTERACTION_EXPIRED', 400, 'Unknown sign-in request.');
    const clientId = String(details.params.client_id ?? '');
    const client = await provider.Client.find(clientId);
    const clientName = client?.clientName ?? clientId;
    const action_ = `/interaction/${uid}/login`;
    const abortAction = `/interaction/${uid}/abort`;

    if (action === 'abort') {
      if (req.method !== 'POST') throw new IdpError('ERR_IDP_METHOD', 405, 'Use POST.');
      await provider.interactionFinished(
        req,
        res,
        { error: 'access_denied', error_description: 'End-User aborted interaction' },
        { mergeWithLastSubmission: false },
      );
      return;
    }

    if (details.prompt.name === 'consent') {
      // Not reached for the configured (first-party) clients thanks to loadExistingGrant; kept as
      // a safety net so a consent prompt never strands the browser.
      const accountId = details.session?.accountId;
      if (!accountId) throw new IdpError('ERR_IDP_INTERACTION_EXPIRED', 400, 'No sign-in session.');
      const grant = details.grantId
        ? ((await provider.Grant.find(details.grantId)) ?? new provider.Grant({ clientId, accountId }))
        : new provider.Grant({ clientId, accountId });
      const missing = details.prompt.details as {
        missingOIDCScope?: string[];
        missingOIDCClaims?: string[];
        missingResourceScopes?: Record<string, string[]>;
      };
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const grantId = await grant.save();
      await provider.interactionFinished(
        req,
        res,
        { consent: { grantId } },
        { mergeWithLastSubmission: true },
      );
      return;
    }

    if (action === undefined) {
      if (req.method !== 'GET' && req.method !== 'HEAD')
        throw new IdpError('ERR_IDP_METHOD', 405, 'Use GET.');
      sendHtml(res, 200, loginPage({ action: action_, abortAction, clientName }));
      return;
    }

    if (req.method !== 'POST') throw new IdpError('ERR_IDP_METHOD', 405, 'Use POST.');
    const form = await readForm(req);
    const username = (form.get('username') ?? '').trim();
    const user = checkPassword(username, form.get('password') ?? '');
    if (!user) {
      logger.info(
        { client_id: clientId, username: findUser(username) ? username : '(unknown)' },
        'sign-in failed',
      );
      sendHtml(
        res,
        401,
        loginPage({
          action: action_,
          abortAction,
          clientName,
          username,
          error: 'Wrong username or password. Try again.',
        }),
      );
      return;
    }
    logger.info({ client_id: clientId, sub: user.username }, 'signed in');
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: user.username, amr: ['pwd'] } },
      { mergeWithLastSubmission: false },
    );
  }

  const demo = createDemoPages(config.issuer, sendHtml);

  const handler: RequestListener = (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (demo.handle(req, res, path)) return;
    if (path === '/health' && (req.method === 'GET' || req.method === 'HEAD')) {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ status: 'ok' }));
      return;
    }
    if (crossSiteSession) crossSiteSessionCookie(res);
    const match = interactionRoute.exec(path);
    if (match) {
      interaction(req, res, match[1]!, match[2]).catch((error: unknown) => {
        const known = error instanceof IdpError ? error : undefined;
        if (!known) logger.error({ err: (error as Error)?.message }, 'interaction failed');
        if (res.headersSent) {
          res.end();
          return;
        }
        sendHtml(
          res,
          known?.status ?? 500,
          messagePage(known?.status === 400 ? 'Sign-in expired' : 'Something went wrong', [
            known?.message ?? 'The sign-in page failed. Try again from the app.',
          ]),
        );
      });
      return;
    }
    current.callback(req, res);
  };

  const rotateSigningKey = async (): Promise<void> => {
    const fresh = await generateSigningJwk(config.signingAlg);
    // Newest first: oidc-provider signs with the first matching key; older keys stay published.
    jwks = { keys: [fresh, ...jwks.keys].slice(0, 3) };
    if (config.keysDir && !config.signingKeys) await saveSigningKeys(config.keysDir, jwks);
    current = build(jwks, current.provider);
    logger.info({ kid: fresh.kid }, 'signing key rotated');
  };

  const reconfigure = (next: ResolvedIdpConfig): void => {
    const nextClients = [...defaultClients(next), ...next.extraClients, ...addedClients];
    const previous = { config, clients };
    config = next;
    clients = nextClients;
    try {
      current = build(jwks, current.provider);
    } catch (error) {
      ({ config, clients } = previous);
      throw error;
    }
  };

  const setBffBaseUrl = (url: string): void => {
    reconfigure(resolveIdpOptions({ ...options, issuer: config.issuer, bffBaseUrl: url }));
  };

  const addClient = (metadata: ClientMetadata): void => {
    if (typeof metadata?.client_id !== 'string' || metadata.client_id === '') {
      throw new TypeError('addClient: the client metadata needs a client_id');
    }
    if (clients.some((c) => c.client_id === metadata.client_id)) {
      throw new TypeError(`addClient: client_id "${metadata.client_id}" is taken; pick another id`);
    }
    addedClients.push(metadata);
    try {
      reconfigure(config);
    } catch (error) {
      addedClients.pop();
      throw error;
    }
  };

  const sign = async (payload: JWTPayload, header: Partial<JWSHeaderParameters> = {}): Promise<string> => {
    const key = jwks.keys.find((k) => k.kid === header.kid) ?? jwks.keys[0]!;
    const alg = key.alg ?? config.signingAlg;
    const privateKey = await importJWK(key, alg);
    return new SignJWT(payload)
      .setProtectedHeader({ alg, kid: key.kid, ...header } as JWTHeaderParameters)
      .sign(privateKey);
  };

  const endSessions = async (accountId: string): Promise<EndSessionsResult> => {
    const { provider } = current;
    const result: EndSessionsResult = { sessions: 0, notified: [], failed: [] };
    const sessionAdapter = store.factory('Session');
    const grantAdapter = store.factory('Grant');
    const tokenAdapter = store.factory('AccessToken');
    for (const { id, payload } of store.sessionsOf(accountId)) {
      result.sessions += 1;
      for (const [clientId, authorization] of Object.entries(payload.authorizations ?? {})) {
        const client = (await provider.Client.find(clientId)) as unknown as ClientWithBackchannel | undefined;
        if (client?.backchannelLogoutUri) {
          try {
            await client.backchannelLogout(accountId, authorization.sid);
            result.notified.push(clientId);
          } catch (error) {
            result.failed.push({ clientId, error: (error as Error).message });
            logger.warn({ client_id: clientId, err: (error as Error).message }, 'back-channel logout failed');
          }
        }
        if (authorization.grantId) {
          await tokenAdapter.revokeByGrantId(authorization.grantId);
          await grantAdapter.destroy(authorization.grantId);
        }
      }
      await sessionAdapter.destroy(id);
    }
    logger.info({ sub: accountId, sessions: result.sessions }, 'sessions ended by administrator');
    return result;
  };

  return {
    issuer: config.issuer,
    get config() {
      return config;
    },
    get provider() {
      return current.provider;
    },
    handler,
    publicJwks: () => ({ keys: jwks.keys.map(publicJwk) }),
    rotateSigningKey,
    sign,
    counters: {
      token: (grantType?: string) =>
        grantType === undefined
          ? [...tokenCounts.values()].reduce((a, b) => a + b, 0)
          : (tokenCounts.get(grantType) ?? 0),
      reset: () => tokenCounts.clear(),
    },
    endSessions,
    setBffBaseUrl,
    addClient,
    close: () => {
      clearInterval(sweeper);
      store.close();
    },
  };
}
