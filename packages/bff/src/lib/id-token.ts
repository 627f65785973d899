// One signature policy for every JWT the OP signs for this client: ID tokens at login and on refresh,
// and back-channel logout tokens (SECURITY L9, L17, R6, B2). The accepted `alg` set and the key source
// are decided once, at discovery, and attached to the openid-client Configuration, so the callback,
// the refresh and the back-channel route all read the same ones (`idTokenPolicy(configuration)`).
// openid-client checks the ID token's claims (its alg check reads the same set); the signature is
// checked here with the key source of jwks.ts, whose refetch policy openid-client cannot express.
import { compactVerify, errors } from 'jose';
import * as client from 'openid-client';
import { BffError } from './errors.js';
import type { JwksSource } from './jwks.js';

/** Asymmetric JWS algorithms accepted for ID tokens and logout tokens (never `none`, never HS*). */
export const ID_TOKEN_ALGORITHMS: readonly string[] = Object.freeze([
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

/** The accepted algorithms and the OP's keys for one discovered provider. */
export interface IdTokenPolicy {
  /** `alg` values accepted in ID tokens and logout tokens (non-empty, asymmetric only). */
  readonly algorithms: readonly string[];
  readonly keys: JwksSource;
}

/**
 * The accepted `alg` set (SECURITY L17): the client's registered `id_token_signed_response_alg`
 * (the `idTokenSignedResponseAlg` option) when set, else the OP's advertised
 * `id_token_signing_alg_values_supported` minus `none`, HS* and anything the BFF cannot verify, else
 * `RS256` (OIDC Core's default) when the OP advertises nothing.
 * @throws BffError `ERR_BFF_CONFIGURATION` when the OP advertises algorithms but none is usable, or
 *   does not list the registered one.
 */
export function resolveIdTokenAlgorithms(registered: string | undefined, advertised: unknown): string[] {
  const list = Array.isArray(advertised)
    ? advertised.filter((alg): alg is string => typeof alg === 'string')
    : undefined;
  if (registered !== undefined) {
    if (list && !list.includes(registered)) {
      throw new BffError(
        'ERR_BFF_CONFIGURATION',
        `the provider does not list idTokenSignedResponseAlg ${registered} in id_token_signing_alg_values_supported`,
      );
    }
    return [registered];
  }
  if (!list) return ['RS256'];
  const usable = list.filter((alg) => ID_TOKEN_ALGORITHMS.includes(alg));
  if (usable.length === 0) {
    throw new BffError(
      'ERR_BFF_CONFIGURATION',
      'the provider advertises no asymmetric ID token algorithm the BFF can verify; set idTokenSignedResponseAlg',
    );
  }
  return usable;
}

// The Configuration object is what every part already shares (BffContext.getOidcConfiguration), so
// the policy rides along with it instead of adding a second lazily-discovered value.
const policies = new WeakMap<client.Configuration, IdTokenPolicy>();

/** Attaches the policy to a Configuration (done once, at discovery). */
export function attachIdTokenPolicy(configuration: client.Configuration, policy: IdTokenPolicy): void {
  policies.set(
    configuration,
    Object.freeze({ ...policy, algorithms: Object.freeze([...policy.algorithms]) }),
  );
}

/** The policy of a Configuration made by createOidcConfiguration. */
export function idTokenPolicy(configuration: client.Configuration): IdTokenPolicy {
  const policy = policies.get(configuration);
  if (!policy) throw new BffError('ERR_BFF_INTERNAL', 'no ID token policy for this OIDC configuration');
  return policy;
}

/**
 * Verifies a JWS signature against the OP's keys with the policy's algorithms (claims are not looked
 * at). Resolves true when valid, false when not (bad signature, unknown key, refused `alg`).
 * @throws BffError `ERR_BFF_IDP_UNAVAILABLE` (503) when the OP's keys cannot be fetched.
 */
export async function hasValidSignature(policy: IdTokenPolicy, jws: string): Promise<boolean> {
  try {
    await compactVerify(jws, policy.keys.getKey, { algorithms: [...policy.algorithms] });
    return true;
  } catch (err) {
    if (err instanceof BffError) throw err;
    if (err instanceof errors.JOSEError || err instanceof TypeError) return false;
    throw err;
  }
}

/** Seconds an `iat` may lie in the future (openid-client's default clock tolerance). */
const IAT_TOLERANCE = 30;

/**
 * The L9 claim checks openid-client leaves out: `azp`, when present, is the client even with a single
 * audience (openid-client checks it only beside several audiences), and `iat` is not in the future
 * beyond the clock tolerance (openid-client only refuses an `iat` too far in the past).
 * Returns the failing claim's name, or undefined.
 */
export function idTokenClaimProblem(
  claims: client.IDToken,
  clientId: string,
  nowSeconds: number,
): 'azp' | 'iat' | undefined {
  if (claims.azp !== undefined && claims.azp !== clientId) return 'azp';
  if (typeof claims.iat !== 'number' || claims.iat > nowSeconds + IAT_TOLERANCE) return 'iat';
  return undefined;
}

/**
 * Completes the ID-token validation of a login's token response after openid-client's (L9): the
 * claims above, then the signature, checked even though the token came straight from the token
 * endpoint, and before anything (UserInfo included) trusts it.
 * @throws BffError `ERR_BFF_LOGIN_FAILED` (400) for a refused token, `ERR_BFF_IDP_UNAVAILABLE` (503)
 *   when the keys cannot be fetched.
 */
export async function verifyLoginIdToken(
  configuration: client.Configuration,
  response: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers,
  nowSeconds: number,
): Promise<void> {
  const claims = response.claims();
  if (!claims || response.id_token === undefined) {
    throw new BffError('ERR_BFF_LOGIN_FAILED', 'no ID token');
  }
  const problem = idTokenClaimProblem(claims, configuration.clientMetadata().client_id, nowSeconds);
  if (problem) throw new BffError('ERR_BFF_LOGIN_FAILED', `ID token ${problem} refused`);
  if (!(await hasValidSignature(idTokenPolicy(configuration), response.id_token))) {
    throw new BffError('ERR_BFF_LOGIN_FAILED', 'ID token signature invalid');
  }
}

/** What a refreshed ID token is compared with: the session's login. */
export interface IdTokenSession {
  readonly iss: string;
  readonly sub: string;
  readonly claims: Readonly<Record<string, unknown>>;
}

/**
 * SECURITY R6 (OIDC Core §12.2): a refresh response's ID token, when there is one, must carry a valid
 * signature (same policy as at login) and the same `iss` and `sub`, an `aud` containing the client, an
 * `azp` (if present) equal to the client, and the login's `auth_time` (if both have one). openid-client
 * has already checked its claims against the provider (iss, aud, exp, iat present, alg). (No "iat
 * not in the future" check here: that needs the BFF's clock to agree with the OP's, which hosts and
 * tests may skew on purpose; at login it is checked, L9.)
 *
 * Resolves true when the response has no ID token or it passes; false when the session must end.
 * @throws BffError `ERR_BFF_IDP_UNAVAILABLE` (503) when the OP's keys cannot be fetched: a fault that
 *   is not the user's does not end the session.
 */
export async function checkRefreshedIdToken(
  configuration: client.Configuration,
  response: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers,
  session: IdTokenSession,
): Promise<boolean> {
  if (response.id_token === undefined) return true;
  const claims = response.claims();
  if (!claims) return false;
  const clientId = configuration.clientMetadata().client_id;
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  const previousAuthTime = session.claims.auth_time;
  const matches =
    claims.iss === session.iss &&
    claims.sub === session.sub &&
    aud.includes(clientId) &&
    (claims.azp === undefined || claims.azp === clientId) &&
    (previousAuthTime === undefined ||
      claims.auth_time === undefined ||
      claims.auth_time === previousAuthTime);
  if (!matches) return false;
  return hasValidSignature(idTokenPolicy(configuration), response.id_token);
}

/**
 * Whether an openid-client failure of a token request came from the response's ID token (its `alg`,
 * shape, claims or timestamps) rather than from the response as a whole. A refresh response whose ID
 * token fails these checks ends the session like any other R6 failure, instead of counting as an
 * unusable response (502) that keeps it.
 */
export function isIdTokenRejection(err: unknown): boolean {
  if (!(err instanceof client.ClientError)) return false;
  switch (err.code) {
    case 'OAUTH_JWT_CLAIM_COMPARISON_FAILED':
    case 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED':
      return true;
    case 'OAUTH_INVALID_RESPONSE':
    case 'OAUTH_PARSE_ERROR':
    case 'OAUTH_UNSUPPORTED_OPERATION': {
      // The wrapper's message is generic; oauth4webapi's own (the cause) names the JWT or ID Token
      // claim it refused, and the only JWT (or JWE) in a token response is the ID token.
      const cause = (err as { cause?: unknown }).cause;
      return cause instanceof Error && /\bJW[TE]\b|\bID Token\b/.test(cause.message);
    }
    default:
      return false;
  }
}
