// Sessions and cookies sealed by the BFF before @gatehouse/seal existed must still open after an
// upgrade (S3: tokens stay encrypted at rest, nobody is signed out by a release). The vectors below
// were produced once by the BFF's own sealing code of that time (packages/bff/src/lib/crypto.ts at
// commit 7861342: HKDF-SHA256 salt 'gatehouse-bff', info `gatehouse-bff ${purpose} v1`), not by
// this package, so they pin the format and the key derivation.
import { describe, expect, it } from 'vitest';
import { createSealer } from '../src/index.js';

const SECRET = 'compat-vector-secret-of-at-least-32-characters';
const PLAINTEXT = '{"accessToken":"at-ü-1","refreshToken":"rt-2"}';
const VECTORS = [
  {
    purpose: 'tokens',
    aad: 'tokens:session-123',
    sealed:
      'qqbjM83Z.aJ7NmLgWhPMPAwrE.JVWxl6FWhNtYjJougGkPhKbK9JoS6e5KFGLakrKJ3zshodfc6TV1nrJy2NBBr6qr0uloNhSfI5P9Zk9puloF',
  },
  {
    purpose: 'cookie',
    aad: 'cookie',
    sealed:
      'vgnor0Om.dV4726u1W5iwe1eO.xhrR6DzfR1XtfOWk_4_tgEBJPFgFmZqjWXkvq6srr28g8vlP61Fo7G4_zIIVm6WmD8HPF2DqmwW3ibJESw1t',
  },
  {
    purpose: 'login-transaction',
    aad: 'login-transaction',
    sealed:
      '2wPSS8HQ.zvvz_NR26MaIhoqy.Rs1hf8XsdGcJfMVkLItOdudZjcfflM3s9qER9Tl_uMD9a2TR-Nt3zOWVk5ezfxJ19-TVOP8KCLtE72jN31A-',
  },
] as const;

const bffSealer = (secrets: string[], purpose: string) =>
  createSealer({ secrets, context: `gatehouse-bff ${purpose} v1`, salt: 'gatehouse-bff' });

describe('@gatehouse/seal opens what the BFF sealed before the package existed', () => {
  for (const { purpose, aad, sealed } of VECTORS) {
    it(`S3: a '${purpose}' value sealed by the old BFF code opens, with the same key id, also behind a new secret`, () => {
      const sealer = bffSealer([SECRET], purpose);
      expect(sealer.keyId).toBe(sealed.slice(0, 8));
      expect(sealer.open(sealed, aad)).toBe(PLAINTEXT);
      const rotated = bffSealer(['a-brand-new-secret-with-32-characters-too', SECRET], purpose);
      expect(rotated.open(sealed, aad)).toBe(PLAINTEXT);
      expect(sealer.open(sealed, `${aad}-other`)).toBeUndefined();
      expect(bffSealer([SECRET], `${purpose}-other`).open(sealed, aad)).toBeUndefined();
    });
  }

  it("S3: the BFF's own wrapper (packages/bff/src/lib/crypto.ts) opens the old values too", async () => {
    const { createSealer: bffCreateSealer } = await import('../../bff/src/lib/crypto.js');
    for (const { purpose, aad, sealed } of VECTORS) {
      const sealer = bffCreateSealer([SECRET], purpose);
      expect(sealer.open(sealed, aad)).toBe(PLAINTEXT);
      // and what it seals now is in the same format, readable by a plain package sealer
      expect(bffSealer([SECRET], purpose).open(sealer.seal('new', aad), aad)).toBe('new');
    }
  });
});
