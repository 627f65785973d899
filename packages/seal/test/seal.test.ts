// @gatehouse/seal: AES-256-GCM sealing at rest (S3). Pure crypto, no outside parts to start.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createSealer, type SealerOptions, safeEqual } from '../src/index.js';

const SECRET = 'a-test-secret-of-at-least-32-characters!';
const NEW_SECRET = 'a-brand-new-secret-with-32-characters-too';
const CONTEXT = 'gatehouse-test tokens v1';
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** A ~1 KB token record, the size the BFF seals per session. */
function tokenRecord(): string {
  return JSON.stringify({
    accessToken: randomBytes(600).toString('base64url'),
    refreshToken: randomBytes(48).toString('base64url'),
    idToken: randomBytes(200).toString('base64url'),
    expiresAt: 1_900_000_000,
  });
}

/** `text` with the character at `index` replaced by a different base64url (or other) character. */
function flipChar(text: string, index: number): string {
  const c = text.charAt(index);
  const i = ALPHABET.indexOf(c);
  const replacement = i === -1 ? 'A' : ALPHABET.charAt((i + 1) % ALPHABET.length);
  return `${text.slice(0, index)}${replacement}${text.slice(index + 1)}`;
}

describe('@gatehouse/seal createSealer', () => {
  it('S3: round trip of a 1 KB token record, unicode and the empty string; ciphertext does not contain the plaintext', () => {
    const sealer = createSealer({ secrets: SECRET, context: CONTEXT });
    for (const plaintext of [tokenRecord(), 'ümlaut ✓ 🎉 \u0000 nul', '']) {
      const sealed = sealer.seal(plaintext, 'tokens:s1');
      expect(sealed.split('.')).toHaveLength(3);
      expect(sealed.startsWith(`${sealer.keyId}.`)).toBe(true);
      if (plaintext.length > 0) expect(sealed).not.toContain(plaintext.slice(0, 16));
      expect(sealer.open(sealed, 'tokens:s1')).toBe(plaintext);
    }
  });

  it('S3: a fresh 96-bit IV per seal: sealing the same value twice gives two different strings', () => {
    const sealer = createSealer({ secrets: [SECRET], context: CONTEXT });
    const ivs = new Set<string>();
    for (let i = 0; i < 1000; i++) ivs.add(sealer.seal('same', 'aad').split('.')[1] as string);
    expect(ivs.size).toBe(1000);
    expect(Buffer.from([...ivs][0] as string, 'base64url')).toHaveLength(12);
  });

  it('S3 rotation: a new secret in front still opens values sealed with the old one, and seals with the new one', () => {
    const old = createSealer({ secrets: [SECRET], context: CONTEXT });
    const rotated = createSealer({ secrets: [NEW_SECRET, SECRET], context: CONTEXT });
    const fromOld = old.seal('record', 'tokens:s1');
    expect(rotated.open(fromOld, 'tokens:s1')).toBe('record');
    const fromNew = rotated.seal('record', 'tokens:s1');
    expect(rotated.keyId).not.toBe(old.keyId);
    expect(fromNew.startsWith(`${rotated.keyId}.`)).toBe(true);
    // The old configuration does not know the new secret.
    expect(old.open(fromNew, 'tokens:s1')).toBeUndefined();
  });

  it('S3: a value sealed with an unknown secret does not open (undefined, no throw)', () => {
    const other = createSealer({ secrets: 'another-secret-also-32-characters-long', context: CONTEXT });
    const sealer = createSealer({ secrets: [NEW_SECRET, SECRET], context: CONTEXT });
    expect(sealer.open(other.seal('record', 'aad'), 'aad')).toBeUndefined();
    // Same key id, other key (as if two secrets collided on the 48-bit id): authentication decides.
    const sealed = other.seal('record', 'aad');
    const forged = `${sealer.keyId}${sealed.slice(sealed.indexOf('.'))}`;
    expect(sealer.open(forged, 'aad')).toBeUndefined();
  });

  it('S3: associated data binds a value to where it belongs: another aad or context does not open it', () => {
    const sealer = createSealer({ secrets: SECRET, context: CONTEXT });
    const sealed = sealer.seal('record', 'tokens:session-a');
    expect(sealer.open(sealed, 'tokens:session-b')).toBeUndefined();
    expect(sealer.open(sealed, '')).toBeUndefined();
    expect(sealer.open(sealed, 'tokens:session-a')).toBe('record');
    const otherContext = createSealer({ secrets: SECRET, context: 'gatehouse-test cookie v1' });
    expect(otherContext.open(sealed, 'tokens:session-a')).toBeUndefined();
    const otherSalt = createSealer({ secrets: SECRET, context: CONTEXT, salt: 'another-salt' });
    expect(otherSalt.open(sealed, 'tokens:session-a')).toBeUndefined();
  });

  it('S3 tamper: every character of a sealed value changed, and every bit of IV and body flipped → undefined', () => {
    const sealer = createSealer({ secrets: SECRET, context: CONTEXT });
    const plaintext = tokenRecord().slice(0, 200);
    const sealed = sealer.seal(plaintext, 'aad');
    let tried = 0;
    for (let i = 0; i < sealed.length; i++) {
      const changed = flipChar(sealed, i);
      expect(changed).not.toBe(sealed);
      expect(sealer.open(changed, 'aad')).toBeUndefined();
      tried++;
    }
    const [id, ivText, bodyText] = sealed.split('.') as [string, string, string];
    for (const [part, bytes] of [
      ['iv', Buffer.from(ivText, 'base64url')],
      ['body', Buffer.from(bodyText, 'base64url')],
    ] as const) {
      for (let bit = 0; bit < bytes.length * 8; bit++) {
        const copy = Buffer.from(bytes);
        copy[bit >> 3] = (copy[bit >> 3] as number) ^ (1 << (bit & 7));
        const value =
          part === 'iv'
            ? `${id}.${copy.toString('base64url')}.${bodyText}`
            : `${id}.${ivText}.${copy.toString('base64url')}`;
        expect(sealer.open(value, 'aad')).toBeUndefined();
        tried++;
      }
    }
    expect(tried).toBeGreaterThan(sealed.length + 200 * 8);
    expect(sealer.open(sealed, 'aad')).toBe(plaintext);
  });

  it('S3: a truncated or extended body, and non-canonical base64url spellings of the same bytes → undefined', () => {
    const sealer = createSealer({ secrets: SECRET, context: CONTEXT });
    // 5 bytes of plaintext + 16 of tag = 21 bytes = 28 characters: no unused bits. 6 bytes → 30
    // characters (rest 2): the last character has 4 unused bits.
    const sealed = sealer.seal('sixsix', 'aad');
    const [id, ivText, bodyText] = sealed.split('.') as [string, string, string];
    expect(bodyText.length % 4).toBe(2);
    const last = ALPHABET.indexOf(bodyText.charAt(bodyText.length - 1));
    const sameBytes = `${bodyText.slice(0, -1)}${ALPHABET.charAt(last | 1)}`;
    expect(Buffer.from(sameBytes, 'base64url').equals(Buffer.from(bodyText, 'base64url'))).toBe(true);
    expect(sealer.open(`${id}.${ivText}.${sameBytes}`, 'aad')).toBeUndefined();
    expect(sealer.open(`${id}.${ivText}.${bodyText}A`, 'aad')).toBeUndefined();
    expect(sealer.open(`${id}.${ivText}.${bodyText}AA`, 'aad')).toBeUndefined();
    expect(sealer.open(`${id}.${ivText}.${bodyText.slice(0, -2)}`, 'aad')).toBeUndefined();
    expect(sealer.open(`${id}.${ivText}.${bodyText}=`, 'aad')).toBeUndefined();
    expect(sealer.open(sealed, 'aad')).toBe('sixsix');
  });

  it('S3/S5: malformed values → undefined, never a throw', () => {
    const sealer = createSealer({ secrets: SECRET, context: CONTEXT });
    const sealed = sealer.seal('record', 'aad');
    const [id, ivText, bodyText] = sealed.split('.') as [string, string, string];
    const tag = Buffer.from(bodyText, 'base64url').subarray(-16).toString('base64url');
    const malformed: unknown[] = [
      '',
      '.',
      '..',
      '...',
      `${sealed}.`,
      `.${sealed}`,
      `${sealed}.extra`,
      `${id}..${bodyText}`,
      `${id}.${ivText}.`,
      `.${ivText}.${bodyText}`,
      `${id}.${ivText}`,
      `${id}.${ivText}.${bodyText}.${bodyText}`,
      `${id}.${ivText.slice(0, 12)}.${bodyText}`, // 9-byte IV
      `${id}.${ivText}AAAA.${bodyText}`, // 15-byte IV
      `${id}.${ivText}.${tag.slice(0, 20)}`, // shorter than a tag
      `${id}.${ivText}.${tag}`, // a tag alone: empty plaintext under another tag
      `${id}.${ivText}.${bodyText.replace(/^./, '!')}`, // not base64url
      `${id}.${ivText}.${bodyText.replace(/^./, '+')}`, // base64, not base64url
      `${id}.${ivText.replace(/^./, '/')}.${bodyText}`,
      `${id}.${ivText}.${bodyText} `,
      `${id}.${ivText}.${bodyText}\n`,
      'not a sealed value at all',
      'x'.repeat(100_000),
      `${'A'.repeat(8)}.${'A'.repeat(16)}.${'A'.repeat(22)}`,
      undefined,
      null,
      42,
      {},
    ];
    for (const value of malformed) {
      expect(() => sealer.open(value as string, 'aad')).not.toThrow();
      expect(sealer.open(value as string, 'aad')).toBeUndefined();
    }
    expect(sealer.open(sealed, undefined as unknown as string)).toBeUndefined();
    expect(sealer.open(sealed, 'aad')).toBe('record');
  });

  it('property: random plaintexts and aad round-trip; a random other aad never opens', () => {
    const sealer = createSealer({ secrets: [NEW_SECRET, SECRET], context: CONTEXT });
    for (let i = 0; i < 300; i++) {
      const plaintext = randomBytes(i * 7).toString(i % 2 ? 'latin1' : 'base64');
      const aad = randomBytes(i % 40).toString('hex');
      const sealed = sealer.seal(plaintext, aad);
      expect(sealer.open(sealed, aad)).toBe(plaintext);
      expect(sealer.open(sealed, `${aad}x`)).toBeUndefined();
    }
  });

  it('fingerprint: keyed, stable, 22 base64url characters, differs per secret, per context and per value', () => {
    const a = createSealer({ secrets: SECRET, context: CONTEXT });
    expect(a.fingerprint('token-1')).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(a.fingerprint('token-1')).toBe(
      createSealer({ secrets: SECRET, context: CONTEXT }).fingerprint('token-1'),
    );
    expect(a.fingerprint('token-1')).not.toBe(a.fingerprint('token-2'));
    expect(a.fingerprint('token-1')).not.toBe(
      createSealer({ secrets: NEW_SECRET, context: CONTEXT }).fingerprint('token-1'),
    );
    expect(a.fingerprint('token-1')).not.toBe(
      createSealer({ secrets: SECRET, context: 'gatehouse-test other v1' }).fingerprint('token-1'),
    );
    // Keyed by the first (sealing) secret: rotation changes fingerprints, an old secret behind does not.
    expect(createSealer({ secrets: [SECRET, NEW_SECRET], context: CONTEXT }).fingerprint('token-1')).toBe(
      a.fingerprint('token-1'),
    );
  });

  it('options are validated once: missing, short or non-string secrets → TypeError that says the fix', () => {
    const make = (options: unknown) => () => createSealer(options as SealerOptions);
    expect(make(undefined)).toThrow(
      new TypeError('createSealer: pass an options object: createSealer({ secrets, context })'),
    );
    expect(make({ context: CONTEXT })).toThrow(TypeError);
    expect(make({ context: CONTEXT })).toThrow(/`secrets` is required.*at least 32 characters.*openssl rand/);
    expect(make({ secrets: [], context: CONTEXT })).toThrow(/`secrets` is required/);
    expect(make({ secrets: 'short', context: CONTEXT })).toThrow(
      /every one of `secrets` must be a string of at least 32 characters/,
    );
    expect(make({ secrets: [SECRET, 'x'.repeat(31)], context: CONTEXT })).toThrow(/at least 32 characters/);
    expect(make({ secrets: [SECRET, 42], context: CONTEXT })).toThrow(/at least 32 characters/);
    expect(make({ secrets: SECRET, context: CONTEXT, secret: SECRET })).toThrow(
      /unknown option `secret` \(known: secrets, context, salt\)/,
    );
  });

  it('options: a bad context or salt → TypeError that says the fix', () => {
    const make = (options: unknown) => () => createSealer(options as SealerOptions);
    for (const context of [undefined, '', 42, 'x'.repeat(257), 'tokens\u0000fingerprint', 'a\nb']) {
      expect(make({ secrets: SECRET, context })).toThrow(TypeError);
      expect(make({ secrets: SECRET, context })).toThrow(
        /`context` must name what the values are for, e\.g\. 'my-app tokens v1'/,
      );
    }
    expect(make({ secrets: SECRET, context: CONTEXT, salt: '' })).toThrow(
      /`salt` must be a non-empty string/,
    );
    expect(make({ secrets: SECRET, context: CONTEXT, salt: 1 })).toThrow(/leave it out for the default/);
    expect(make({ secrets: SECRET, context: 'x'.repeat(256) })).not.toThrow();
  });

  it('seal refuses non-string input with a TypeError (a programming error, not bad data)', () => {
    const sealer = createSealer({ secrets: SECRET, context: CONTEXT });
    expect(() => sealer.seal(undefined as unknown as string, 'aad')).toThrow(TypeError);
    expect(() => sealer.seal('x', { toString: () => 'aad' } as unknown as string)).toThrow(TypeError);
  });

  it('the sealer is frozen', () => {
    const sealer = createSealer({ secrets: SECRET, context: CONTEXT });
    expect(Object.isFrozen(sealer)).toBe(true);
  });
});

describe('@gatehouse/seal safeEqual', () => {
  it('compares strings (utf-8), including different lengths, without throwing', () => {
    expect(safeEqual('abc', 'abc')).toBe(true);
    expect(safeEqual('abc', 'abd')).toBe(false);
    expect(safeEqual('abc', 'abcd')).toBe(false);
    expect(safeEqual('', '')).toBe(true);
    expect(safeEqual('é', 'e\u0301')).toBe(false);
    expect(safeEqual('ü', 'ü')).toBe(true);
  });
});
