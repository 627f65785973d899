// Randomness, hashing and AES-256-GCM sealing for tokens at rest and for small cookie payloads.
// Keys come from the session secrets via HKDF, one per secret: the first seals, all can open, so a
// new secret can be prepended without logging everyone out.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';

/** `bytes` CSPRNG bytes as base64url. 32 bytes = 256 bits (S2). */
export function randomId(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** SHA-256 as base64url. */
export function sha256(value: string): string {
  return createHash('sha256').update(value).digest('base64url');
}

/** Constant-time string comparison. */
export function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

interface SealKey {
  readonly id: string;
  readonly key: Buffer;
}

/** Seals and opens strings with AES-256-GCM; the associated data binds a ciphertext to its context. */
export interface Sealer {
  seal(plaintext: string, aad: string): string;
  /** The plaintext, or undefined when no key opens it or it was tampered with. */
  open(sealed: string, aad: string): string | undefined;
}

/** Builds a Sealer for `purpose` from the secret list (first secret seals). */
export function createSealer(secrets: readonly string[], purpose: string): Sealer {
  const keys: SealKey[] = secrets.map((secret) => {
    const key = Buffer.from(hkdfSync('sha256', secret, 'gatehouse-bff', `gatehouse-bff ${purpose} v1`, 32));
    return { id: createHash('sha256').update(key).digest('base64url').slice(0, 8), key };
  });
  const current = keys[0];
  if (!current) throw new TypeError('createSealer: at least one secret is required');

  return {
    seal(plaintext, aad) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', current.key, iv);
      cipher.setAAD(Buffer.from(aad));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
      return `${current.id}.${iv.toString('base64url')}.${body.toString('base64url')}`;
    },
    open(sealed, aad) {
      const [id, ivText, bodyText, extra] = sealed.split('.');
      if (!id || !ivText || !bodyText || extra !== undefined) return undefined;
      const entry = keys.find((k) => k.id === id);
      if (!entry) return undefined;
      const iv = Buffer.from(ivText, 'base64url');
      const body = Buffer.from(bodyText, 'base64url');
      if (iv.length !== 12 || body.length < 16) return undefined;
      try {
        const decipher = createDecipheriv('aes-256-gcm', entry.key, iv);
        decipher.setAAD(Buffer.from(aad));
        decipher.setAuthTag(body.subarray(body.length - 16));
        return Buffer.concat([
          decipher.update(body.subarray(0, body.length - 16)),
          decipher.final(),
        ]).toString('utf8');
      } catch {
        return undefined;
      }
    },
  };
}
