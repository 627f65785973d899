// The sample host and DPoP (SECURITY D1): on by default, BFF_DPOP=false switches it off; a typo fails
// loudly instead of silently sending Bearer tokens.
import { describe, expect, it } from 'vitest';
import { createApp, dpopFromEnv } from '../src/app.js';

describe('sample host and DPoP (BFF_DPOP)', () => {
  it('D1: BFF_DPOP unset/true → DPoP, false → Bearer; anything else throws with the fix', () => {
    expect(dpopFromEnv(undefined)).toBe(true);
    expect(dpopFromEnv('')).toBe(true);
    expect(dpopFromEnv('true')).toBe(true);
    expect(dpopFromEnv(' TRUE ')).toBe(true);
    expect(dpopFromEnv('false')).toBe(false);
    expect(() => dpopFromEnv('yes')).toThrow(/BFF_DPOP must be true .* or false .*, got "yes"/);
  });

  it('D1: the host turns DPoP on unless told otherwise (ES256 session keys)', async () => {
    const on = createApp({ issuer: 'http://127.0.0.1:4999' });
    const off = createApp({ issuer: 'http://127.0.0.1:4999', dpop: false });
    try {
      expect(on.bff.config.dpop).toEqual({ alg: 'ES256' });
      expect(off.bff.config.dpop).toBeUndefined();
    } finally {
      await on.close();
      await off.close();
    }
  });
});
