import { errors, type JWTPayload, type JWTVerifyOptions, type JWTVerifyResult, jwtVerify } from 'jose';
import { type AccessTokenValidatorOptions, type ResolvedConfig, resolveConfig } from './config.js';
import { withDeadline } from './deadline.js';
import { createProofChecker, type DPoPRequest } from './dpop.js';
import { AccessTokenError } from './errors.js';
import { createIntrospector } from './introspection.js';
import { createKeySource } from './keys.js';
import { createMetadataSource } from './metadata.js';
import { createNonceSource } from './nonce.js';
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
  /**
   * Validates a DPoP-bound token (the value after `DPoP `) with its proof: every check of RFC 9449
   * §4.3, then the token itself, then `cnf.jkt` against the proof key, then the `jti` replay cache.
   * Needs the `dpop` option. The result carries `dpop.jkt`.
   * @throws AccessTokenError 401 `ERR_API_AUTH_INVALID_DPOP_PROOF` (`invalid_dpop_proof`),
   *   `ERR_API_AUTH_USE_DPOP_NONCE` (`use_dpop_nonce`; send {@link dpopNonce} as `DPoP-Nonce`) or
   *   `ERR_API_AUTH_INVALID_TOKEN`; 503 as {@link validate}, or `ERR_API_AUTH_REPLAY_STORE_UNAVAILABLE`.
   * @see https://www.rfc-editor.org/rfc/rfc9449#section-7.1
   */
  validateDPoP(token: string, request: DPoPRequest): Promise<AccessTokenAuth>;
  /** The current server nonce to send as `DPoP-Nonce`, or undefined when nonces are off. */
  dpopNonce(): string | undefined;
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

/** The `cnf.jkt` of a DPoP-bound token (RFC 9449 §6), or undefined. */
function boundJkt(cnf: unknown): string | undefined {
  if (typeof cnf !== 'object' || cnf === null) return undefined;
  const jkt = (cnf as { jkt?: unknown }).jkt;
  return typeof jkt === 'string' && jkt.length > 0 ? jkt : undefined;
}

function bindingError(bound: boolean): AccessTokenError {
  return invalid(
    bound
      ? 'the token is not bound to a DPoP key (no cnf.jkt)'
      : 'a sender-constrained (DPoP-bound) token must be sent with the DPoP scheme, not as a Bearer token',
  );
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

  // One body for both presentations; `bound` says whether the request proved a DPoP key.
  const toAuth = (payload: JWTPayload, bound: boolean): AccessTokenAuth => {
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
    // RFC 9449 §7.2: a DPoP-bound (or otherwise sender-constrained) token presented as Bearer is a
    // downgrade. With DPoP, the binding is checked against the proof key by validateDPoP.
    if (bound ? boundJkt(cnf) === undefined : cnf !== undefined) throw bindingError(bound);
    const claims = payload as AccessTokenClaims;
    return {
      kind: config.tokenKind(claims),
      claims,
      scopes: scope ? scope.split(' ').filter(Boolean) : [],
      source: 'jwt',
    };
  };

  const checkClaims = (payload: JWTPayload): AccessTokenAuth => toAuth(payload, false);
  const checkBoundClaims = (payload: JWTPayload): AccessTokenAuth => toAuth(payload, true);

  // The slow path: no kid and several keys, or any rejection (mapped to a fixed description).
  const recover = (
    token: string,
    options: JWTVerifyOptions,
    cause: unknown,
    check: (payload: JWTPayload) => AccessTokenAuth,
  ): Promise<AccessTokenAuth> => {
    if (!(cause instanceof errors.JWKSMultipleMatchingKeys)) return Promise.reject(fromJose(cause));
    return verifyEachKey(token, options, cause).then(
      (result) => check(result.payload),
      (inner: unknown) => Promise.reject(fromJose(inner)),
    );
  };

  // Plain promise chaining rather than async/try: one verification, one continuation.
  const validateJwt = (
    token: string,
    check: (payload: JWTPayload) => AccessTokenAuth,
  ): Promise<AccessTokenAuth> => {
    const options = optionsFor();
    // With a memoized key this is exactly the raw `jwtVerify(token, key, options)` call.
    const key = keys.cachedKey(token.slice(0, token.indexOf('.')));
    return (key === undefined ? jwtVerify(token, keys.getKey, options) : jwtVerify(token, key, options)).then(
      (result) => check(result.payload),
      (cause: unknown) => recover(token, options, cause, check),
    );
  };

  /** Introspected results are cached for both presentations, so the binding is checked here. */
  const checkIntrospected = (auth: AccessTokenAuth, bound: boolean): AccessTokenAuth => {
    const { cnf, token_type: tokenType } = auth.claims;
    const dpopType = typeof tokenType === 'string' && tokenType.toLowerCase() === 'dpop';
    if (bound ? boundJkt(cnf) === undefined : cnf !== undefined || dpopType) throw bindingError(bound);
    return auth;
  };
  const introspectBearer = introspect
    ? (token: string) => introspect(token).then((auth) => checkIntrospected(auth, false))
    : undefined;

  const tokenProblem = (token: string): AccessTokenError | undefined => {
    if (typeof token !== 'string' || token.length === 0) return invalid('the access token is empty');
    if (token.length > config.maxTokenLength) return invalid('the access token is too long');
    return undefined;
  };

  const validate = (token: string): Promise<AccessTokenAuth> => {
    if (typeof token !== 'string' || token.length === 0) {
      return Promise.reject(invalid('the access token is empty'));
    }
    if (token.length > config.maxTokenLength) return Promise.reject(invalid('the access token is too long'));
    if (isJwtShaped(token)) return validateJwt(token, checkClaims);
    if (introspectBearer) return introspectBearer(token);
    return Promise.reject(invalid('the access token is not a JWT and introspection is not configured'));
  };

  const dpop = config.dpop;
  const nonces = dpop?.nonce
    ? createNonceSource(dpop.nonce.secrets, dpop.nonce.lifetime * 1000, now)
    : undefined;
  const checkProof = dpop ? createProofChecker(config, dpop, now, nonces) : undefined;
  const timeoutMs = config.timeout * 1000;

  const validateDPoP = async (token: string, request: DPoPRequest): Promise<AccessTokenAuth> => {
    if (!dpop || !checkProof) {
      throw new AccessTokenError(
        'ERR_API_AUTH_CONFIG',
        'DPoP is not configured: pass dpop: { publicUrl } to createAccessTokenValidator()',
      );
    }
    const started = Date.now();
    const problem = tokenProblem(token);
    if (problem) throw problem;
    // The proof first: it is local work, and a bad one must not cost an introspection call.
    const proof = await checkProof(token, request);
    let auth: AccessTokenAuth;
    if (isJwtShaped(token)) auth = await validateJwt(token, checkBoundClaims);
    else if (introspect) auth = checkIntrospected(await introspect(token), true);
    else throw invalid('the access token is not a JWT and introspection is not configured');
    // RFC 9449 §7.1 / Figure 16: the proof key must be the key the token is bound to.
    if (boundJkt(auth.claims.cnf) !== proof.jkt) {
      throw invalid('the DPoP proof key does not match the key the token is bound to (cnf.jkt)');
    }
    // Claimed last, so only proofs that passed everything else take room in the cache. SET NX makes a
    // proof sent twice at once pass exactly once.
    let first: boolean;
    try {
      first = await withDeadline(
        dpop.replayStore.claimOnce(proof.replayKey, proof.ttl),
        timeoutMs - (Date.now() - started),
        () =>
          new AccessTokenError(
            'ERR_API_AUTH_REPLAY_STORE_UNAVAILABLE',
            'the DPoP replay cache did not answer in time',
          ),
      );
    } catch (cause) {
      const error =
        cause instanceof AccessTokenError && cause.code === 'ERR_API_AUTH_REPLAY_STORE_UNAVAILABLE'
          ? cause
          : new AccessTokenError(
              'ERR_API_AUTH_REPLAY_STORE_UNAVAILABLE',
              'the DPoP replay cache is unavailable',
              {
                cause,
              },
            );
      config.logger.warn({ code: error.code }, 'DPoP replay cache failed');
      throw error;
    }
    if (!first)
      throw new AccessTokenError('ERR_API_AUTH_INVALID_DPOP_PROOF', 'the DPoP proof was already used (jti)');
    return { ...auth, dpop: { jkt: proof.jkt } };
  };

  return Object.freeze({
    validate,
    validateDPoP,
    dpopNonce: () => nonces?.current(),
    warmUp: keys.warmUp,
    config,
  });
}
