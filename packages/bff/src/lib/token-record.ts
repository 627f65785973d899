// The shape of a session's decrypted tokens: shared by the token step (tokens.ts) and the refresh
// (refresh/flight.ts) without either importing the other's code.
import type { DpopPrivateJwk } from './dpop/key.js';

/** The decrypted token record of a session. Times are epoch seconds. */
export interface TokenRecord {
  /** Access token for the default resource (opaque: never decoded, R1). */
  at: string;
  /** When `at` expires, from `expires_in` at issue time. */
  exp: number;
  /** `expires_in` as issued (seconds): bounds the refresh margin for short-lived tokens. */
  ttl?: number;
  rt?: string | undefined;
  idt?: string | undefined;
  /** Access tokens for other resources (RFC 8707), obtained with the refresh token. */
  res?: Record<string, { at: string; exp: number; ttl?: number }>;
  /**
   * The session's DPoP private key (SECURITY D1): present when the tokens are DPoP-bound. Sealed with
   * them, never sent anywhere; the same key for the whole session.
   */
  dpop?: DpopPrivateJwk;
}
