// createAccessTokenValidator's options, validated once into a frozen ResolvedConfig. Introspection
// and DPoP have their own resolvers (introspection-config.ts, dpop-config.ts).
import { type DPoPOptions, type ResolvedDPoP, resolveDPoP } from './dpop-config.js';
import {
  type IntrospectionOptions,
  type ResolvedIntrospection,
  resolveIntrospection,
} from './introspection-config.js';
import { checkKeys, checkUrl, fail, nonEmptyString, resolveAlgorithms, seconds } from './option-checks.js';
import type { AccessTokenClaims, Logger, TokenKind } from './types.js';

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

/** The validated, frozen configuration, built once from the options by `createAccessTokenValidator`. */
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
const silentLogger: Logger = Object.freeze({ debug() {}, info() {}, warn() {}, error() {} });

/** RFC 9068 §5 / oidc-provider: a client-credentials token names the client as its subject. */
export const subIsClientId = (claims: AccessTokenClaims): TokenKind =>
  claims.sub === claims.client_id ? 'client' : 'user';

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
