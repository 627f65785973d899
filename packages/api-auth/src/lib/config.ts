import { randomBytes } from 'node:crypto';
import { createMemoryReplayStore, type DPoPReplayStore } from './replay.js';
import type { AccessTokenClaims, Logger, TokenKind } from './types.js';

/** Options of RFC 7662 token introspection, for opaque (non-JWT) access tokens. */
export interface IntrospectionOptions {
  /** This API's own client id at the authorization server. */
  clientId: string;
  /** This API's client secret. */
  clientSecret: string;
  /** Introspection endpoint; default: `introspection_endpoint` from the issuer's metadata. */
  endpoint?: string;
  /** How to authenticate; default `client_secret_basic`. */
  authMethod?: 'client_secret_basic' | 'client_secret_post';
  /**
   * Upper bound, in seconds, on how long an active result is reused; a result is never reused past
   * the token's `exp`. `0` disables the cache. Default 60.
   */
  cacheMaxAge?: number;
  /** Most cached results kept (oldest evicted first). Default 10 000. */
  maxCacheEntries?: number;
}

/**
 * How a route treats DPoP (RFC 9449): `required` accepts only `Authorization: DPoP` with a proof;
 * `allowed` accepts DPoP and Bearer (a DPoP-bound token sent as Bearer is still refused);
 * `disabled` accepts Bearer only.
 */
export type DPoPPolicy = 'required' | 'allowed' | 'disabled';

/** Server-issued DPoP nonces (RFC 9449 §9), stateless: HMAC over a rotating time window. */
export interface DPoPNonceOptions {
  /**
   * HMAC secret(s), at least 32 characters each; the first issues nonces, all are accepted, so a
   * secret can be rotated. Give every API instance the same secret. Default: random per process
   * (right for a single instance).
   */
  secret?: string | readonly string[];
  /** Window length in seconds; a nonce is accepted for one to two windows. Default 120. */
  lifetime?: number;
}

/** DPoP support of the validator (RFC 9449 §4.3 and §7). */
export interface DPoPOptions {
  /**
   * This API's public base URL as clients call it, e.g. `https://api.example.com` (a path is allowed
   * for an API behind a path-mapping gateway). A proof's `htu` must equal this URL plus the request
   * path; the `Host` and `X-Forwarded-*` headers are never used, so a client cannot choose it.
   */
  publicUrl: string;
  /** Accepted proof algorithms (asymmetric only), also sent as `algs` in challenges. Default: all of {@link ASYMMETRIC_ALGORITHMS}. */
  algorithms?: readonly string[];
  /** How long after its `iat` a proof is accepted, 1–600 seconds; a future `iat` gets `clockTolerance`. Default 60. */
  proofLifetime?: number;
  /** Where accepted proof `jti`s are remembered. Default: {@link createMemoryReplayStore} (one process). */
  replayStore?: DPoPReplayStore;
  /** Require server nonces in proofs: `true` (random secret) or {@link DPoPNonceOptions}. Default off. */
  nonce?: boolean | DPoPNonceOptions;
}

/** Options of {@link createAccessTokenValidator}. Durations are in seconds. */
export interface AccessTokenValidatorOptions {
  /**
   * The authorization server's issuer identifier, compared exactly with the token's `iss` and the
   * metadata's `issuer`. Metadata is discovered lazily from `/.well-known/openid-configuration`
   * (then RFC 8414 `/.well-known/oauth-authorization-server`).
   */
  issuer: string;
  /** This API's identifier; the token's `aud` (string or array) must contain it. */
  audience: string;
  /**
   * Accepted JWS algorithms; only asymmetric ones are allowed (`none` and `HS*` throw).
   * Default: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, Ed25519.
   */
  algorithms?: readonly string[];
  /** Leeway for `exp`, `nbf` and `iat`, 0–60 seconds. Default 5. */
  clockTolerance?: number;
  /** Claims required on top of RFC 9068's `iss exp aud sub client_id iat jti`. */
  requiredClaims?: readonly string[];
  /** `realm` of the `WWW-Authenticate` challenge. Default: the audience. */
  realm?: string;
  /** JWKS URL; default: `jwks_uri` from the issuer's metadata. Keys come from nowhere else. */
  jwksUri?: string;
  /** Least time between two JWKS fetches caused by an unknown `kid`. Default 30. */
  jwksCooldown?: number;
  /** How long a fetched JWKS is used before it is fetched again. Default 600. */
  jwksCacheMaxAge?: number;
  /**
   * Longest time one validation waits for the network (metadata, JWKS, introspection, the DPoP
   * replay cache), in total; past it the request gets 503. Default 5.
   */
  timeout?: number;
  /** Enables RFC 7662 introspection for tokens that are not JWTs. Off by default. */
  introspection?: IntrospectionOptions;
  /** Enables DPoP-bound tokens (`Authorization: DPoP`). Off by default: Bearer only. */
  dpop?: DPoPOptions;
  /**
   * Tells user tokens from client-credentials tokens. Default: a token whose `sub` equals its
   * `client_id` is a client token (RFC 9068 §2.2 and oidc-provider set `sub` to the client id for
   * client credentials); every other token is a user token. Replace it when your authorization
   * server marks client tokens differently.
   */
  tokenKind?: (claims: AccessTokenClaims) => TokenKind;
  /** Tokens longer than this many characters are rejected unparsed. Default 8192. */
  maxTokenLength?: number;
  /** Allows a plain-http issuer, JWKS or introspection URL on a non-loopback host. Never in production. */
  dangerouslyAllowInsecureHttp?: boolean;
  /** `fetch` used for metadata, JWKS and introspection. Default: the global `fetch`. */
  fetch?: typeof fetch;
  /** Receives debug lines on rejections and warnings on fetch failures. Default: silent. */
  logger?: Logger;
  /** Current time in milliseconds since the epoch. Default `Date.now`. */
  clock?: () => number;
}

/** Every asymmetric JWS algorithm jose verifies on Node 20. */
export const ASYMMETRIC_ALGORITHMS: readonly string[] = Object.freeze([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
]);

/** RFC 9068 §2.2: the claims every JWT access token must carry. */
export const RFC9068_REQUIRED_CLAIMS: readonly string[] = Object.freeze([
  'iss',
  'exp',
  'aud',
  'sub',
  'client_id',
  'iat',
  'jti',
]);

export interface ResolvedIntrospection {
  readonly clientId: string;
  readonly clientSecret: string;
  readonly endpoint: string | undefined;
  readonly authMethod: 'client_secret_basic' | 'client_secret_post';
  readonly cacheMaxAge: number;
  readonly maxCacheEntries: number;
}

export interface ResolvedDPoP {
  /** `publicUrl`'s origin, e.g. `https://api.example.com`. */
  readonly origin: string;
  /** `publicUrl`'s path without a trailing slash (`''` at the root). */
  readonly basePath: string;
  readonly algorithms: readonly string[];
  /** The `algs` challenge attribute, built once. */
  readonly algs: string;
  readonly proofLifetime: number;
  readonly replayStore: DPoPReplayStore;
  readonly nonce: { readonly secrets: readonly Buffer[]; readonly lifetime: number } | undefined;
}

/** The validated, frozen configuration; built once by {@link resolveConfig}. */
export interface ResolvedConfig {
  readonly issuer: string;
  readonly audience: string;
  readonly algorithms: readonly string[];
  readonly clockTolerance: number;
  readonly requiredClaims: readonly string[];
  readonly realm: string;
  readonly jwksUri: string | undefined;
  readonly jwksCooldown: number;
  readonly jwksCacheMaxAge: number;
  readonly timeout: number;
  readonly introspection: ResolvedIntrospection | undefined;
  readonly dpop: ResolvedDPoP | undefined;
  readonly tokenKind: (claims: AccessTokenClaims) => TokenKind;
  readonly maxTokenLength: number;
  readonly dangerouslyAllowInsecureHttp: boolean;
  readonly fetch: typeof fetch;
  readonly logger: Logger;
  readonly clock: (() => number) | undefined;
}

const OPTION_KEYS = new Set<string>([
  'issuer',
  'audience',
  'algorithms',
  'clockTolerance',
  'requiredClaims',
  'realm',
  'jwksUri',
  'jwksCooldown',
  'jwksCacheMaxAge',
  'timeout',
  'introspection',
  'dpop',
  'tokenKind',
  'maxTokenLength',
  'dangerouslyAllowInsecureHttp',
  'fetch',
  'logger',
  'clock',
]);
const INTROSPECTION_KEYS = new Set<string>([
  'clientId',
  'clientSecret',
  'endpoint',
  'authMethod',
  'cacheMaxAge',
  'maxCacheEntries',
]);

const DPOP_KEYS = new Set<string>(['publicUrl', 'algorithms', 'proofLifetime', 'replayStore', 'nonce']);
const NONCE_KEYS = new Set<string>(['secret', 'lifetime']);

const silentLogger: Logger = Object.freeze({ debug() {}, info() {}, warn() {}, error() {} });

/** RFC 9068 §5 / oidc-provider: a client-credentials token names the client as its subject. */
export const subIsClientId = (claims: AccessTokenClaims): TokenKind =>
  claims.sub === claims.client_id ? 'client' : 'user';

function fail(message: string): never {
  throw new TypeError(`@gatehouse/api-auth: ${message}`);
}

function checkKeys(value: object, allowed: Set<string>, where: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.has(key)) fail(`unknown option "${where}${key}"; allowed: ${[...allowed].join(', ')}`);
  }
}

function nonEmptyString(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0) fail(`"${name}" must be a non-empty string`);
  return value;
}

function seconds(value: unknown, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    fail(`"${name}" must be a number of seconds between ${min} and ${max} (got ${String(value)})`);
  }
  return value;
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Checks an outbound URL: https, or http on loopback, or http anywhere with the dangerous switch. */
export function checkUrl(value: unknown, name: string, allowInsecure: boolean): string {
  const text = nonEmptyString(value, name);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail(`"${name}" must be an absolute URL (got "${text}")`);
  }
  if (url.protocol === 'https:') return text;
  if (url.protocol === 'http:' && (allowInsecure || LOOPBACK.has(url.hostname))) return text;
  return fail(
    `"${name}" must use https (plain http is allowed on loopback only; set dangerouslyAllowInsecureHttp: true to override)`,
  );
}

function resolveAlgorithms(value: unknown, name: string, what: string): readonly string[] {
  if (value === undefined) return ASYMMETRIC_ALGORITHMS;
  if (!Array.isArray(value) || value.length === 0)
    fail(`"${name}" must be a non-empty array such as ["ES256"]`);
  for (const alg of value) {
    if (alg === 'none' || (typeof alg === 'string' && /^HS\d+$/i.test(alg))) {
      fail(
        `"${name}" must not contain "${alg}": ${what} must be signed with an asymmetric key (RFC 8725 §3.1)`,
      );
    }
    if (!ASYMMETRIC_ALGORITHMS.includes(alg)) {
      fail(
        `"${name}" contains unsupported "${String(alg)}"; choose from ${ASYMMETRIC_ALGORITHMS.join(', ')}`,
      );
    }
  }
  return Object.freeze([...new Set(value as string[])]);
}

function resolveNonce(value: unknown): ResolvedDPoP['nonce'] {
  if (value === undefined || value === false) return undefined;
  if (value === true) return Object.freeze({ secrets: Object.freeze([randomBytes(32)]), lifetime: 120 });
  if (typeof value !== 'object' || value === null)
    fail('"dpop.nonce" must be true, false or { secret?, lifetime? }');
  checkKeys(value, NONCE_KEYS, 'dpop.nonce.');
  const options = value as DPoPNonceOptions;
  let secrets: Buffer[];
  if (options.secret === undefined) secrets = [randomBytes(32)];
  else {
    const list = typeof options.secret === 'string' ? [options.secret] : options.secret;
    if (!Array.isArray(list) || list.length === 0)
      fail('"dpop.nonce.secret" must be a string or a non-empty array of strings');
    secrets = list.map((secret) => {
      if (typeof secret !== 'string' || secret.length < 32) {
        fail('"dpop.nonce.secret" must be at least 32 characters (e.g. openssl rand -base64 32)');
      }
      return Buffer.from(secret, 'utf8');
    });
  }
  return Object.freeze({
    secrets: Object.freeze(secrets),
    lifetime: seconds(options.lifetime, 'dpop.nonce.lifetime', 120, 1, 3600),
  });
}

function resolveDPoP(value: unknown, allowInsecure: boolean): ResolvedDPoP | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null)
    fail('"dpop" must be an object such as { publicUrl: "https://api.example.com" }');
  checkKeys(value, DPOP_KEYS, 'dpop.');
  const options = value as DPoPOptions;
  if (options.publicUrl === undefined) {
    fail(
      '"dpop.publicUrl" is required: the base URL clients call this API at (DPoP htu is checked against it)',
    );
  }
  const url = new URL(checkUrl(options.publicUrl, 'dpop.publicUrl', allowInsecure));
  if (
    url.search !== '' ||
    url.hash !== '' ||
    url.username !== '' ||
    url.password !== '' ||
    options.publicUrl.includes('?')
  ) {
    fail('"dpop.publicUrl" must be a plain base URL without query, fragment or credentials');
  }
  const store = options.replayStore ?? createMemoryReplayStore();
  if (typeof store !== 'object' || store === null || typeof store.claimOnce !== 'function') {
    fail(
      '"dpop.replayStore" must have claimOnce(key, ttlSeconds) (createMemoryReplayStore() or createRedisReplayStore())',
    );
  }
  const algorithms = resolveAlgorithms(options.algorithms, 'dpop.algorithms', 'DPoP proofs');
  return Object.freeze({
    origin: url.origin,
    basePath: url.pathname.replace(/\/+$/, ''),
    algorithms,
    algs: algorithms.join(' '),
    proofLifetime: seconds(options.proofLifetime, 'dpop.proofLifetime', 60, 1, 600),
    replayStore: store,
    nonce: resolveNonce(options.nonce),
  });
}

function resolveIntrospection(value: unknown, allowInsecure: boolean): ResolvedIntrospection | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null) fail('"introspection" must be an object');
  checkKeys(value, INTROSPECTION_KEYS, 'introspection.');
  const options = value as IntrospectionOptions;
  const authMethod = options.authMethod ?? 'client_secret_basic';
  if (authMethod !== 'client_secret_basic' && authMethod !== 'client_secret_post') {
    fail('"introspection.authMethod" must be "client_secret_basic" or "client_secret_post"');
  }
  const maxCacheEntries = options.maxCacheEntries ?? 10_000;
  if (!Number.isInteger(maxCacheEntries) || maxCacheEntries < 1) {
    fail('"introspection.maxCacheEntries" must be a positive integer');
  }
  return Object.freeze({
    clientId: nonEmptyString(options.clientId, 'introspection.clientId'),
    clientSecret: nonEmptyString(options.clientSecret, 'introspection.clientSecret'),
    endpoint:
      options.endpoint === undefined
        ? undefined
        : checkUrl(options.endpoint, 'introspection.endpoint', allowInsecure),
    authMethod,
    cacheMaxAge: seconds(options.cacheMaxAge, 'introspection.cacheMaxAge', 60, 0, 86_400),
    maxCacheEntries,
  });
}

/** Validates the options once and returns a frozen config; throws a TypeError that names the fix. */
export function resolveConfig(options: AccessTokenValidatorOptions): ResolvedConfig {
  if (typeof options !== 'object' || options === null) {
    fail('createAccessTokenValidator() needs an options object with at least { issuer, audience }');
  }
  checkKeys(options, OPTION_KEYS, '');
  const allowInsecure = options.dangerouslyAllowInsecureHttp === true;
  if (
    options.dangerouslyAllowInsecureHttp !== undefined &&
    typeof options.dangerouslyAllowInsecureHttp !== 'boolean'
  ) {
    fail('"dangerouslyAllowInsecureHttp" must be a boolean');
  }
  const issuer = checkUrl(options.issuer, 'issuer', allowInsecure);
  if (issuer.includes('?') || issuer.includes('#')) fail('"issuer" must not contain a query or fragment');
  const audience = nonEmptyString(options.audience, 'audience');

  const algorithms = resolveAlgorithms(options.algorithms, 'algorithms', 'access tokens');

  const requiredClaims = [...RFC9068_REQUIRED_CLAIMS];
  if (options.requiredClaims !== undefined) {
    if (!Array.isArray(options.requiredClaims)) fail('"requiredClaims" must be an array of claim names');
    for (const claim of options.requiredClaims) {
      requiredClaims.push(nonEmptyString(claim, 'requiredClaims[]'));
    }
  }

  const realm = options.realm ?? audience;
  // The realm is written into a quoted-string of WWW-Authenticate; keep it plain.
  if (
    typeof realm !== 'string' ||
    realm.length === 0 ||
    !/^[\x20-\x7e]+$/.test(realm) ||
    /["\\]/.test(realm)
  ) {
    fail('"realm" must be printable ASCII without quotes or backslashes');
  }

  const maxTokenLength = options.maxTokenLength ?? 8192;
  if (!Number.isInteger(maxTokenLength) || maxTokenLength < 64) {
    fail('"maxTokenLength" must be an integer of at least 64');
  }
  for (const name of ['tokenKind', 'fetch', 'clock'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function')
      fail(`"${name}" must be a function`);
  }
  const logger = options.logger ?? silentLogger;
  if (
    typeof logger !== 'object' ||
    logger === null ||
    typeof logger.debug !== 'function' ||
    typeof logger.warn !== 'function'
  ) {
    fail('"logger" must have debug/info/warn/error methods (a pino logger fits)');
  }

  return Object.freeze({
    issuer,
    audience,
    algorithms,
    clockTolerance: seconds(options.clockTolerance, 'clockTolerance', 5, 0, 60),
    requiredClaims: Object.freeze([...new Set(requiredClaims)]),
    realm,
    jwksUri: options.jwksUri === undefined ? undefined : checkUrl(options.jwksUri, 'jwksUri', allowInsecure),
    jwksCooldown: seconds(options.jwksCooldown, 'jwksCooldown', 30, 0, 86_400),
    jwksCacheMaxAge: seconds(options.jwksCacheMaxAge, 'jwksCacheMaxAge', 600, 1, 86_400 * 7),
    timeout: seconds(options.timeout, 'timeout', 5, 0.001, 120),
    introspection: resolveIntrospection(options.introspection, allowInsecure),
    dpop: resolveDPoP(options.dpop, allowInsecure),
    tokenKind: options.tokenKind ?? subIsClientId,
    maxTokenLength,
    dangerouslyAllowInsecureHttp: allowInsecure,
    fetch: options.fetch ?? ((input: Parameters<typeof fetch>[0], init?: RequestInit) => fetch(input, init)),
    logger,
    clock: options.clock,
  });
}
