// The session cookie's wire format must not change between releases: a cookie written by an earlier
// release (hand-written HMAC code, the express-session format) has to name the same session after an
// upgrade, and a cookie written now has to be the same bytes the earlier code wrote.
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { randomId } from '../src/lib/crypto.js';
import { createSessionCookie } from '../src/lib/session/cookie.js';

const NAME = '__Host-bff';
const FIRST = 'first-secret-of-the-previous-release-0123';
const SECOND = 'second-secret';
const ID = 'J8p2v1xq3n0Zr6_Lk4TfWd9yHbEaU7sGcQmP5oRiVtA';

/**
 * Set-Cookie values written by the previous release's hand-written code for session ID above, signed
 * with FIRST and with SECOND (its output, recorded before the code moved to cookie/cookie-signature).
 * The first signature contains `+`, so the URL-encoding of the value is covered too.
 */
const WRITTEN_BY_PREVIOUS_RELEASE = {
  first: `${NAME}=s%3A${ID}.8WfMz01KUPVfo6Gd40aTh9HPaGNK46wp%2BptvzJL6b%2BQ; Path=/; HttpOnly; Secure; SameSite=Strict`,
  second: `${NAME}=s%3A${ID}.ty9fjDItF%2BSEbZtL%2BQZcqepWU2lnWZcF1lvXtfdoitA; Path=/; HttpOnly; Secure; SameSite=Strict`,
};

/** The format from its definition: `s:<id>.<HMAC-SHA256(id) as base64 without padding>`, URL-encoded. */
function expectedValue(id: string, secret: string): string {
  const mac = createHmac('sha256', secret).update(id).digest('base64').replace(/=+$/, '');
  return encodeURIComponent(`s:${id}.${mac}`);
}

/** The Cookie request header a browser sends back for a Set-Cookie value, among other cookies. */
const cookieHeaderFor = (setCookie: string) => `theme=dark; ${setCookie.split(';')[0]}; _ga=GA1.1.1`;

describe('session cookie format (compatible with earlier releases)', () => {
  it('S1: issue() writes byte for byte what the previous release wrote', () => {
    expect(createSessionCookie(NAME, [FIRST, SECOND]).issue(ID)).toBe(WRITTEN_BY_PREVIOUS_RELEASE.first);
    expect(createSessionCookie(NAME, [SECOND]).issue(ID)).toBe(WRITTEN_BY_PREVIOUS_RELEASE.second);
  });

  it('S1: issue() follows the format definition for random ids and secrets', () => {
    for (let i = 0; i < 200; i++) {
      const id = randomId(32);
      const secret = randomId(24);
      expect(createSessionCookie(NAME, [secret]).issue(id)).toBe(
        `${NAME}=${expectedValue(id, secret)}; Path=/; HttpOnly; Secure; SameSite=Strict`,
      );
    }
  });

  it('a cookie written by the previous release names its session, under either secret of the rotation', () => {
    const cookie = createSessionCookie(NAME, [FIRST, SECOND]);
    expect(cookie.idFrom(cookieHeaderFor(WRITTEN_BY_PREVIOUS_RELEASE.first))).toBe(ID);
    expect(cookie.idFrom(cookieHeaderFor(WRITTEN_BY_PREVIOUS_RELEASE.second))).toBe(ID);
    // After the rotation ends (FIRST removed), only the SECOND-signed cookie still holds.
    const rotated = createSessionCookie(NAME, [SECOND]);
    expect(rotated.idFrom(cookieHeaderFor(WRITTEN_BY_PREVIOUS_RELEASE.first))).toBeUndefined();
    expect(rotated.idFrom(cookieHeaderFor(WRITTEN_BY_PREVIOUS_RELEASE.second))).toBe(ID);
  });

  it('S5: a forged, truncated, re-encoded or foreign-secret signature names no session, also after a genuine hit', () => {
    const cookie = createSessionCookie(NAME, [FIRST]);
    const genuine = expectedValue(ID, FIRST);
    expect(cookie.idFrom(`${NAME}=${genuine}`)).toBe(ID); // now remembered as verified
    const forged = [
      genuine.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')), // one character of the MAC changed
      genuine.slice(0, -1), // truncated MAC
      `${genuine}A`, // MAC too long
      expectedValue(ID, 'someone-elses-secret'),
      expectedValue(`${ID}x`, FIRST).replace(`${ID}x`, ID), // MAC of another id
      `s%3A.${expectedValue('', FIRST).split('.')[1]}`, // empty id with its genuine MAC
      encodeURIComponent(`s:${ID}`), // no MAC at all
      genuine.replace('s%3A', ''), // no `s:` prefix
      's%3A%ZZ.x', // malformed URL-encoding
    ];
    for (const value of forged) expect(cookie.idFrom(`${NAME}=${value}`), value).toBeUndefined();
    expect(cookie.idFrom(undefined)).toBeUndefined();
    expect(cookie.idFrom('')).toBeUndefined();
    expect(cookie.idFrom(`other=${genuine}`)).toBeUndefined();
  });

  it('the first cookie of that name counts, as in the previous release', () => {
    const cookie = createSessionCookie(NAME, [FIRST]);
    const genuine = expectedValue(ID, FIRST);
    expect(cookie.idFrom(`${NAME}=${genuine}; ${NAME}=forged`)).toBe(ID);
    expect(cookie.idFrom(`${NAME}=forged; ${NAME}=${genuine}`)).toBeUndefined();
  });
});
