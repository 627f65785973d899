// Tokens in a shared cache are bearer credentials at rest: anyone who can read Redis (a replica, a
// backup, a debugging session) could replay them. So entries are sealed (@gatehouse/seal: AES-256-GCM
// under a key derived from the configured secret), and the Redis key is bound in as associated data
// so an entry cannot be moved to another key (another client or scope) without failing to open.
import { createSealer, type Sealer as PackageSealer } from '@gatehouse/seal';

/** Seals and opens shared-cache entries; the first secret seals, every secret may open. */
export class Sealer {
  readonly #sealer: PackageSealer;

  constructor(secrets: readonly string[]) {
    this.#sealer = createSealer({ secrets, context: 'gatehouse-token-manager shared-cache v2' });
  }

  /**
   * A keyed fingerprint of a token, stored in clear in front of the ciphertext so that an
   * "invalidate if it is still this token" can run atomically in Redis without the key.
   */
  fingerprint(token: string): string {
    return this.#sealer.fingerprint(token);
  }

  /** `<fingerprint>.<sealed>`; the fingerprint never contains a dot (base64url). */
  seal(plaintext: string, fingerprint: string, aad: string): string {
    return `${fingerprint}.${this.#sealer.seal(plaintext, aad)}`;
  }

  /** Returns the plaintext, or `undefined` when the value is malformed or no secret opens it. */
  open(value: string, aad: string): string | undefined {
    const dot = value.indexOf('.');
    // Entries of the earlier `<fingerprint>.v1.<blob>` format do not open: a cache miss, no harm.
    return dot < 1 ? undefined : this.#sealer.open(value.slice(dot + 1), aad);
  }
}
