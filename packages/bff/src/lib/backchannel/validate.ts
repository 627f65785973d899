// Logout-token validation (OIDC Back-Channel Logout 1.0 §2.4, §2.6 incl. errata 1; SECURITY B2, B3).
// Pure: it gets the keys and the expected values and returns the claims the logout acts on, or a
// reason the token is refused. The reason is for the log only; the OP always just gets 400.
import { decodeProtectedHeader, errors, type JWTVerifyGetKey, jwtVerify } from 'jose';
import { BffError } from '../errors.js';

/** The event member a logout token must carry (BCL §2.4). */
export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/** What a valid logout token says. */
export interface LogoutTokenClaims {
  readonly iss: string;
  readonly sub: string | undefined;
  readonly sid: string | undefined;
  readonly jti: string;
  /** Expiry, seconds since the epoch: the replay cache keeps `jti` until then. */
  readonly exp: number;
}

/** Expected values, resolved from discovery and the client registration. */
export interface LogoutTokenExpectations {
  readonly issuer: string;
  readonly clientId: string;
  /**
   * The accepted `alg` values: the same set as for ID tokens (SECURITY L17, B2), i.e. the registered
   * `id_token_signed_response_alg`, else the OP's advertised asymmetric algorithms. Never `none`/HS*.
   */
  readonly algorithms: readonly string[];
  /** Require `typ: logout+jwt` (B3 strict mode). */
  readonly requireTyp: boolean;
  /** Longest accepted `exp - iat`, seconds. */
  readonly maxLifetime: number;
  /** Allowed clock skew, seconds. */
  readonly clockTolerance: number;
}

/** Why a token was refused (log field; never sent to the caller). */
export type LogoutTokenFailure =
  | 'malformed'
  | 'alg'
  | 'typ'
  | 'signature'
  | 'iss'
  | 'aud'
  | 'exp'
  | 'iat'
  | 'lifetime'
  | 'claims'
  | 'events'
  | 'nonce'
  | 'subject';

export type LogoutTokenResult =
  | { readonly ok: true; readonly claims: LogoutTokenClaims }
  | { readonly ok: false; readonly reason: LogoutTokenFailure };

const MAX_ID_LENGTH = 512;

/**
 * Validates a logout token; never throws for a bad token.
 * @throws BffError `ERR_BFF_IDP_UNAVAILABLE` when `keys` cannot reach the OP's key set (a fault, not a
 *   bad token: the OP should deliver again later).
 */
export async function validateLogoutToken(
  token: string,
  keys: JWTVerifyGetKey,
  expect: LogoutTokenExpectations,
): Promise<LogoutTokenResult> {
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    return fail('malformed');
  }
  // Checked before any key lookup: `none`, HS* and every alg outside the policy never get that far.
  if (
    typeof header.alg !== 'string' ||
    !expect.algorithms.includes(header.alg) ||
    header.alg === 'none' ||
    header.alg.startsWith('HS')
  ) {
    return fail('alg');
  }
  if (header.typ === undefined ? expect.requireTyp : !isLogoutTyp(header.typ)) return fail('typ');

  let payload: Awaited<ReturnType<typeof jwtVerify>>['payload'];
  try {
    ({ payload } = await jwtVerify(token, keys, {
      algorithms: [...expect.algorithms],
      issuer: expect.issuer,
      audience: expect.clientId,
      requiredClaims: ['iss', 'aud', 'iat', 'exp', 'jti'],
      clockTolerance: expect.clockTolerance,
      maxTokenAge: expect.maxLifetime,
    }));
  } catch (err) {
    if (err instanceof BffError) throw err;
    return fail(reasonOf(err));
  }

  const { iat, exp, jti, sub, sid, events, iss } = payload;
  if (typeof iat !== 'number' || typeof exp !== 'number') return fail('claims');
  if (iat > Date.now() / 1000 + expect.clockTolerance) return fail('iat');
  // A short-lived token bounds how long the replay cache must remember it.
  if (exp - iat > expect.maxLifetime) return fail('lifetime');
  if (typeof jti !== 'string' || jti === '' || jti.length > MAX_ID_LENGTH) return fail('claims');
  if (!isObject(events) || !isObject(events[BACKCHANNEL_LOGOUT_EVENT])) return fail('events');
  // BCL §2.4: a nonce is prohibited, which also tells an ID token apart from a logout token.
  if ('nonce' in payload) return fail('nonce');
  if (sub !== undefined && !isId(sub)) return fail('subject');
  if (sid !== undefined && !isId(sid)) return fail('subject');
  if (sub === undefined && sid === undefined) return fail('subject');
  return {
    ok: true,
    claims: { iss: iss as string, sub: sub as string | undefined, sid: sid as string | undefined, jti, exp },
  };
}

function fail(reason: LogoutTokenFailure): LogoutTokenResult {
  return { ok: false, reason };
}

function isLogoutTyp(typ: string): boolean {
  const value = typ.toLowerCase();
  return value === 'logout+jwt' || value === 'application/logout+jwt';
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isId(value: unknown): value is string {
  return typeof value === 'string' && value !== '' && value.length <= MAX_ID_LENGTH;
}

function reasonOf(err: unknown): LogoutTokenFailure {
  if (err instanceof errors.JWTExpired) return 'exp';
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'iss':
        return 'iss';
      case 'aud':
        return 'aud';
      case 'iat':
        return 'iat';
      case 'exp':
        return 'exp';
      default:
        return 'claims';
    }
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return 'alg';
  if (err instanceof errors.JWTInvalid || err instanceof errors.JWSInvalid) return 'malformed';
  return 'signature';
}
