// Stateless DPoP server nonces (RFC 9449 §9): `<step>.<mac>`, where step counts `lifetime`-long
// windows and mac = HMAC-SHA256(secret, step). Any instance holding the secret can check a nonce, so
// nothing is stored and several API instances agree without a shared cache.
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Issues the current nonce and checks presented ones. */
export interface NonceSource {
  /** The nonce to hand out now (`DPoP-Nonce`). */
  current(): string;
  /** True when `nonce` was issued by us for the current or the previous window. */
  check(nonce: string): boolean;
}

/** Truncated MAC length: 128 bits are plenty for a value that expires within minutes. */
const MAC_BYTES = 16;
const STEP = /^[0-9a-z]{1,11}$/;

/**
 * @param secrets HMAC keys; the first issues, all verify (rotation).
 * @param lifetimeMs Window length; a nonce is accepted for one to two windows.
 */
export function createNonceSource(
  secrets: readonly Buffer[],
  lifetimeMs: number,
  now: () => number,
): NonceSource {
  const mac = (secret: Buffer, step: number) =>
    createHmac('sha256', secret).update(`gatehouse-dpop-nonce:${step}`).digest().subarray(0, MAC_BYTES);
  // Computed once per window: every DPoP response carries the current nonce.
  let cachedStep = -1;
  let cached = '';

  return {
    current() {
      const step = Math.floor(now() / lifetimeMs);
      if (step !== cachedStep) {
        cached = `${step.toString(36)}.${mac(secrets[0] as Buffer, step).toString('base64url')}`;
        cachedStep = step;
      }
      return cached;
    },
    check(nonce) {
      if (typeof nonce !== 'string' || nonce.length > 64) return false;
      const dot = nonce.indexOf('.');
      const stepText = nonce.slice(0, dot);
      if (dot === -1 || !STEP.test(stepText)) return false;
      const step = Number.parseInt(stepText, 36);
      const current = Math.floor(now() / lifetimeMs);
      if (step !== current && step !== current - 1) return false;
      let given: Buffer;
      try {
        given = Buffer.from(nonce.slice(dot + 1), 'base64url');
      } catch {
        return false;
      }
      if (given.length !== MAC_BYTES || given.toString('base64url') !== nonce.slice(dot + 1)) return false;
      return secrets.some((secret) => timingSafeEqual(mac(secret, step), given));
    },
  };
}
