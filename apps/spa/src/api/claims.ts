import type { Claim } from './types';

/** The first value of a claim type, as a string (or undefined). */
export function claimValue(claims: readonly Claim[], type: string): string | undefined {
  const found = claims.find((claim) => claim.type === type);
  if (found === undefined || found.value === undefined || found.value === null) return undefined;
  return typeof found.value === 'string' ? found.value : JSON.stringify(found.value);
}

/** `bff:session_expires_in` in seconds, when the BFF reports it. */
export function sessionExpiresIn(claims: readonly Claim[]): number | undefined {
  const raw = claimValue(claims, 'bff:session_expires_in');
  const seconds = raw === undefined ? Number.NaN : Number(raw);
  return Number.isFinite(seconds) ? seconds : undefined;
}

/** Renders a claim value for the table: epoch-second claims also get a readable date. */
export function formatClaimValue(type: string, value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  if (['iat', 'exp', 'auth_time', 'nbf', 'updated_at'].includes(type) && typeof value === 'number') {
    return `${text} (${new Date(value * 1000).toLocaleString()})`;
  }
  return text;
}

/** How the BFF sends this session's access token upstream, from `/bff/user` (SECURITY D1). */
export interface TokenBinding {
  /** `DPoP`: sender-constrained, each call carries a proof signed with the session's key. */
  type: 'DPoP' | 'Bearer';
  /** Thumbprint (RFC 7638) of the session's DPoP key, the tokens' `cnf.jkt`: public, not the key. */
  jkt?: string;
}

/** The session's token binding; a BFF that reports none sends Bearer tokens. */
export function tokenBinding(claims: readonly Claim[]): TokenBinding {
  const jkt = claimValue(claims, 'bff:dpop_jkt');
  return claimValue(claims, 'bff:token_type') === 'DPoP' && jkt ? { type: 'DPoP', jkt } : { type: 'Bearer' };
}
