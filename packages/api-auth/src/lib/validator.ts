import { errors, type JWTPayload, type JWTVerifyOptions, type JWTVerifyResult, jwtVerify } from 'jose';
import { type AccessTokenValidatorOptions, type ResolvedConfig, resolveConfig } from './config.js';
import { AccessTokenError } from './errors.js';
import { createIntrospector } from './introspection.js';
import { createKeySource } from './keys.js';
import { createMetadataSource } from './metadata.js';
import type { AccessTokenAuth, AccessTokenClaims } from './types.js';

/**
 * Validates access tokens for one API (resource server). Build it once with
 * {@link createAccessTokenValidator} and share it: it holds the JWKS and introspection caches.
 */
export interface AccessTokenValidator {
  /**
   * Validates a bearer token (the value after `Bearer `) and returns its claims, scopes and kind.
   * @throws AccessTokenError 401 `ERR_API_AUTH_INVALID_TOKEN`; 503 `ERR_API_AUTH_KEYS_UNAVAILABLE` or
   *   `ERR_API_AUTH_INTROSPECTION_UNAVAILABLE`; 500 `ERR_API_AUTH_CONFIG`.
   */
  validate(token: string): Promise<AccessTokenAuth>;
  /** Discovers the issuer and fetches its keys now (optional; validation does it lazily). */
  warmUp(): Promise<void>;
  /** The resolved, frozen configuration. */
  readonly config: ResolvedConfig;
}

/** Exactly two dots: a JWS compact serialization (jose checks the rest); anything else is opaque. */
function isJwtShaped(token: string): boolean {
  const first = token.indexOf('.');
  if (first === -1) return false;
  const second = token.indexOf('.', first + 1);
  return second !== -1 && token.indexOf('.', second + 1) === -1;
}

function invalid(description: string, cause?: unknown): AccessTokenError {
  return new AccessTokenError('ERR_API_AUTH_INVALID_TOKEN', description, { cause });
}

/** Turns jose's verdicts into fixed descriptions (never echoing token content). */
function fromJose(cause: unknown): AccessTokenError {
  if (cause instanceof AccessTokenError) return cause;
  if (cause instanceof errors.JWTExpired) return invalid('the access token expired', cause);
  if (cause instanceof errors.JWTClaimValidationFailed) {
    if (cause.claim === 'typ') return invalid('the token is not an access token (typ must be at+jwt)', cause);
    if (cause.reason === 'missing')
      return invalid(`the token lacks the required ${cause.claim} claim`, cause);
    if (cause.claim === 'iss') return invalid('the token was issued by another issuer', cause);
    if (cause.claim === 'aud') return invalid('the token is not meant for this API (aud)', cause);
    if (cause.claim === 'nbf') return invalid('the token is not valid yet (nbf)', cause);
    return invalid('the token has an invalid claim', cause);
  }
  if (cause instanceof errors.JOSEAlgNotAllowed)
    return invalid('the token is signed with an algorithm that is not allowed', cause);
  if (cause instanceof errors.JWSSignatureVerificationFailed)
    return invalid('the token signature is invalid', cause);
  if (cause instanceof errors.JWKSNoMatchingKey)
    return invalid('no signing key of the issuer matches the token', cause);
  if (cause instanceof errors.JOSENotSupported)
    return invalid('the token uses an unsupported algorithm or header', cause);
  if (cause instanceof errors.JOSEError) return invalid('the token is malformed', cause);
  return new AccessTokenError('ERR_API_AUTH_INTERNAL', 'the token could not be validated', { cause });
}

/**
 * Creates the framework-neutral validator. Options are checked here, once; the returned
 * `validate` does no configuration work per call.
 *
 * @example
 * const validator = createAccessTokenValidator({ issuer: 'https://idp.example', audience: 'urn:my-api' });
 * const { claims, scopes, kind } = await validator.validate(token);
 * @see https://www.rfc-editor.org/rfc/rfc9068 (JWT access tokens)
 * @see https://www.rfc-editor.org/rfc/rfc7662 (introspection)
 */
export function createAccessTokenValidator(options: AccessTokenValidatorOptions): AccessTokenValidator {
  const config = resolveConfig(options);
  const metadata = createMetadataSource(config);
  const keys = createKeySource(config, metadata);
  const now = config.clock ?? Date.now;
  const toleranceMs = config.clockTolerance * 1000;
  const introspect = config.introspection
    ? createIntrospector(config, config.introspection, metadata, now)
    : undefined;

  // Built once; jose reads it on every call. `typ: 'at+jwt'` makes jose compare case-insensitively
  // and accept the `application/` prefix (RFC 9068 §4).
  const verifyOptions: JWTVerifyOptions = Object.freeze({
    issuer: config.issuer,
    audience: config.audience,
    algorithms: config.algorithms as string[],
    typ: 'at+jwt',
    clockTolerance: config.clockTolerance,
    requiredClaims: config.requiredClaims as string[],
  });
  const optionsFor: () => JWTVerifyOptions = config.clock
    ? () => ({ ...verifyOptions, currentDate: new Date(now()) })
    : () => verifyOptions;

  // No kid and several keys: try each candidate, as the JWKS may hold a rotated-out key too.
  const verifyEachKey = async (
    token: string,
    options: JWTVerifyOptions,
    candidates: errors.JWKSMultipleMatchingKeys,
  ): Promise<JWTVerifyResult> => {
    for await (const key of candidates) {
      try {
        return await jwtVerify(token, key, options);
      } catch (cause) {
        if (!(cause instanceof errors.JWSSignatureVerificationFailed)) throw cause;
      }
    }
    throw new errors.JWSSignatureVerificationFailed();
  };

  const checkClaims = (payload: JWTPayload): AccessTokenAuth => {
    // jose checked presence, iss, aud, exp and nbf; RFC 9068 also fixes these types.
    const { sub, iat, jti, scope, cnf } = payload;
    const clientId = payload.client_id;
    if (typeof sub !== 'string' || sub === '') throw invalid('the token has an invalid sub');
    if (typeof clientId !== 'string' || clientId === '') throw invalid('the token has an invalid client_id');
    if (typeof jti !== 'string' || jti === '') throw invalid('the token has an invalid jti');
    if (typeof iat !== 'number' || iat * 1000 > now() + toleranceMs) {
      throw invalid('the token is issued in the future (iat)');
    }
    if (scope !== undefined && typeof scope !== 'string') throw invalid('the token has an invalid scope');
    // RFC 9449 §7.1: a DPoP-bound token presented as Bearer is a downgrade; DPoP support comes later.
    if (cnf !== undefined) throw invalid('a sender-constrained token cannot be used as a Bearer token');
    const claims = payload as AccessTokenClaims;
    return {
      kind: config.tokenKind(claims),
      claims,
      scopes: scope ? scope.split(' ').filter(Boolean) : [],
      source: 'jwt',
    };
  };

  // The slow path: no kid and several keys, or any rejection (mapped to a fixed description).
  const recover = (token: string, options: JWTVerifyOptions, cause: unknown): Promise<AccessTokenAuth> => {
    if (!(cause instanceof errors.JWKSMultipleMatchingKeys)) return Promise.reject(fromJose(cause));
    return verifyEachKey(token, options, cause).then(
      (result) => checkClaims(result.payload),
      (inner: unknown) => Promise.reject(fromJose(inner)),
    );
  };

  // Plain promise chaining rather than async/try: one verification, one continuation.
  const validateJwt = (token: string): Promise<AccessTokenAuth> => {
    const options = optionsFor();
    // With a memoized key this is exactly the raw `jwtVerify(token, key, options)` call.
    const key = keys.cachedKey(token.slice(0, token.indexOf('.')));
    return (key === undefined ? jwtVerify(token, keys.getKey, options) : jwtVerify(token, key, options)).then(
      (result) => checkClaims(result.payload),
      (cause: unknown) => recover(token, options, cause),
    );
  };

  const validate = (token: string): Promise<AccessTokenAuth> => {
    if (typeof token !== 'string' || token.length === 0) {
      return Promise.reject(invalid('the access token is empty'));
    }
    if (token.length > config.maxTokenLength) return Promise.reject(invalid('the access token is too long'));
    if (isJwtShaped(token)) return validateJwt(token);
    if (introspect) return introspect(token);
    return Promise.reject(invalid('the access token is not a JWT and introspection is not configured'));
  };

  return Object.freeze({
    validate,
    warmUp: keys.warmUp,
    config,
  });
}
