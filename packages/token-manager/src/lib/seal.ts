// Tokens in a shared cache are bearer credentials at rest: anyone who can read Redis (a replica, a
// backup, a debugging session) could replay them. So entries are sealed with AES-256-GCM under a key
// derived from the configured secret, and the Redis key is bound in as associated data so an entry
// cannot be moved to another key (another client or scope) without failing authentication.
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';

const VERSION = 'v1';

interface DerivedKeys {
  enc: Buffer;
  mac: Buffer;
}

function derive(secret: string): DerivedKeys {
  const ikm = Buffer.from(secret, 'utf8');
  const salt = Buffer.from('gatehouse/token-manager/shared-cache');
  return {
    enc: Buffer.from(hkdfSync('sha256', ikm, salt, 'aes-256-gcm v1', 32)),
    mac: Buffer.from(hkdfSync('sha256', ikm, salt, 'token fingerprint v1', 32)),
  };
}

/** Seals and opens shared-cache entries; the first secret seals, every secret may open. */
export class Sealer {
  readonly #keys: DerivedKeys[];

  constructor(secrets: readonly string[]) {
    this.#keys = secrets.map(derive);
  }

  /**
   * A keyed fingerprint of a token, stored in clear in front of the ciphertext so that an
   * "invalidate if it is still this token" can run atomically in Redis without the key.
   */
  fingerprint(token: string): string {
    return createHmac('sha256', this.#keys[0]!.mac).update(token).digest('base64url').slice(0, 22);
  }

  seal(plaintext: string, fingerprint: string, aad: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#keys[0]!.enc, iv);
    cipher.setAAD(Buffer.from(aad));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const sealed = Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
    return `${fingerprint}.${VERSION}.${sealed}`;
  }

  /** Returns the plaintext, or `undefined` when the value is malformed or no secret opens it. */
  open(value: string, aad: string): string | undefined {
    const [, version, sealed] = value.split('.');
    if (version !== VERSION || !sealed) return undefined;
    const raw = Buffer.from(sealed, 'base64url');
    if (raw.length < 12 + 16) return undefined;
    const iv = raw.subarray(0, 12);
    const tag = raw.subarray(raw.length - 16);
    const body = raw.subarray(12, raw.length - 16);
    for (const keys of this.#keys) {
      try {
        const decipher = createDecipheriv('aes-256-gcm', keys.enc, iv);
        decipher.setAAD(Buffer.from(aad));
        decipher.setAuthTag(tag);
        return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
      } catch {
        // wrong key (rotation) or tampered value: try the next secret
      }
    }
    return undefined;
  }
}
