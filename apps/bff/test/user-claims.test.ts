// The sample host and Duende's claim value shape: BFF_USER_CLAIM_VALUES=string makes GET /bff/user
// answer every user-claim value as a string (createBff's `userClaimValues: 'string'`); unset or `json`
// keeps values as issued; a typo fails at start instead of silently changing what the SPA reads.
import {
  getFreePort,
  type RunningBff,
  type RunningIdp,
  startBff,
  startIdp,
  TestBrowser,
} from '@gatehouse/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, userClaimValuesFromEnv } from '../src/app.js';

type Claim = { type: string; value: unknown };

describe('sample host and claim value shapes (BFF_USER_CLAIM_VALUES)', () => {
  it('BFF_USER_CLAIM_VALUES: unset/json → "json", string → "string"; anything else throws with the fix', () => {
    expect(userClaimValuesFromEnv(undefined)).toBe('json');
    expect(userClaimValuesFromEnv('')).toBe('json');
    expect(userClaimValuesFromEnv('json')).toBe('json');
    expect(userClaimValuesFromEnv(' STRING ')).toBe('string');
    for (const bad of ['strings', 'true', 'duende']) {
      expect(() => userClaimValuesFromEnv(bad)).toThrow(
        new RegExp(`BFF_USER_CLAIM_VALUES must be json \\(.*\\) or string \\(.*\\), got "${bad}"`),
      );
    }
  });

  it('the host passes the shape to createBff (default json)', async () => {
    const plain = createApp({ issuer: 'http://127.0.0.1:4999' });
    const duende = createApp({ issuer: 'http://127.0.0.1:4999', userClaimValues: 'string' });
    try {
      expect(plain.bff.config.userClaimValues).toBe('json');
      expect(duende.bff.config.userClaimValues).toBe('string');
    } finally {
      await plain.close();
      await duende.close();
    }
  });

  describe('end to end with the sample IdP', () => {
    let idp: RunningIdp;
    let bff: RunningBff;
    beforeAll(async () => {
      const port = await getFreePort();
      idp = await startIdp({ bffBaseUrl: `http://localhost:${port}` });
      bff = await startBff({ port, issuer: idp.issuer, userClaimValues: userClaimValuesFromEnv('string') });
    });
    afterAll(async () => {
      await bff?.close();
      await idp?.close();
    });

    it('BFF_USER_CLAIM_VALUES=string: /bff/user answers email_verified as "true" and every user claim as a string', async () => {
      const browser = new TestBrowser();
      await browser.login(`${bff.url}/bff/login`, { username: 'alice', password: 'alice' });
      const res = await browser.fetch(`${bff.url}/bff/user`, {
        headers: { 'x-csrf': '1' },
        initiator: `${bff.url}/`,
      });
      expect(res.status).toBe(200);
      const claims = (await res.json()) as Claim[];
      const user = claims.filter((c) => !c.type.startsWith('bff:'));
      expect(user.length).toBeGreaterThan(3);
      for (const claim of user) expect(typeof claim.value, claim.type).toBe('string');
      expect(claims.find((c) => c.type === 'email_verified')?.value).toBe('true');
      expect(typeof claims.find((c) => c.type === 'bff:session_expires_in')?.value).toBe('number');
    });
  });
});
