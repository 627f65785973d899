// The options of createIdp: their types, their defaults, and the one-time validation that turns
// them into a frozen ResolvedIdpConfig (every mistake a TypeError that says the fix).
import { resolve } from 'node:path';
import type { JWK } from 'jose';
import type { ClientMetadata } from 'oidc-provider';
import { DEFAULT_CLIENT_IDS, DEV_CLIENT_SECRETS } from './constants.js';
import { isJwks } from './lib/keys.js';

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
  /**
   * Require server nonces in DPoP proofs at the token and UserInfo endpoints (RFC 9449 §8): a proof
   * without the current nonce is answered `400 use_dpop_nonce` (`401` at UserInfo) with a fresh one
   * in `DPoP-Nonce`. The nonce secret is random per process. Default false.
   * @see https://www.rfc-editor.org/rfc/rfc9449#section-8
   */
  requireDpopNonce?: boolean;
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
  readonly requireDpopNonce: boolean;
  readonly signingKeys: { keys: JWK[] } | undefined;
  readonly keysDir: string | undefined;
  readonly dataDir: string | undefined;
  readonly signingAlg: SigningAlg;
  readonly logger: IdpLogger;
}

/** Signing algorithms the sample IdP can generate keys for. */
export type SigningAlg = 'RS256' | 'ES256' | 'PS256';
const SIGNING_ALGS: readonly SigningAlg[] = ['RS256', 'ES256', 'PS256'];

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
  'requireDpopNonce',
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
  const requireDpopNonce = options.requireDpopNonce ?? false;
  if (typeof requireDpopNonce !== 'boolean') {
    throw new TypeError('createIdp: requireDpopNonce must be a boolean');
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
    requireDpopNonce,
    signingKeys: options.signingKeys,
    keysDir,
    dataDir,
    signingAlg,
    logger,
  });
}
