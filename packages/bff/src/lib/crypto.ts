// Randomness, hashing and sealing for tokens at rest and for small cookie payloads. Sealing itself
// (AES-256-GCM, HKDF keys per secret, rotation) lives in @gatehouse/seal; this keeps the names the
// rest of the BFF imports and pins the key derivation the BFF has always used, so sessions and
// cookies sealed by an earlier release still open after an upgrade.
import { createHash, randomBytes } from 'node:crypto';
import { createSealer as createPackageSealer, type Sealer as PackageSealer } from '@gatehouse/seal';

export { safeEqual } from '@gatehouse/seal';

/** `bytes` CSPRNG bytes as base64url. 32 bytes = 256 bits (S2). */
export function randomId(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** SHA-256 as base64url. */
export function sha256(value: string): string {
  return createHash('sha256').update(value).digest('base64url');
}

/** Seals and opens strings with AES-256-GCM; the associated data binds a ciphertext to its context. */
export type Sealer = Pick<PackageSealer, 'seal' | 'open'>;

/** Builds a Sealer for `purpose` from the secret list (first secret seals, every secret opens). */
export function createSealer(secrets: readonly string[], purpose: string): Sealer {
  // HKDF salt and info exactly as before the shared package: changing either changes every key.
  return createPackageSealer({ secrets, context: `gatehouse-bff ${purpose} v1`, salt: 'gatehouse-bff' });
}
