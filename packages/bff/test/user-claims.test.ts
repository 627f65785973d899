// GET /bff/user claim value shapes: the default keeps values as issued; `userClaimValues: 'string'` gives
// Duende BFF's shape (every user-claim value a string) for SPAs written against Duende. Real sample IdP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/lib/config.js';
import { getUser, type Stack, signIn, startStack } from './support-core/stack.js';

type Claim = { type: string; value: unknown };

describe('/bff/user claim values', () => {
  let json: Stack;
  let strings: Stack;
  beforeAll(async () => {
    [json, strings] = await Promise.all([
      startStack(),
      startStack({ bffOptions: { userClaimValues: 'string' } }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([json?.close(), strings?.close()]);
  });

  const claimsOf = async (stack: Stack): Promise<Claim[]> => {
    const { browser } = await signIn(stack);
    const res = await getUser(browser, stack);
    expect(res.status).toBe(200);
    return (await res.json()) as Claim[];
  };
  const value = (claims: Claim[], type: string) => claims.find((c) => c.type === type)?.value;

  it('default (json): values as issued (email_verified is a boolean)', async () => {
    const claims = await claimsOf(json);
    expect(value(claims, 'sub')).toBe('alice');
    expect(value(claims, 'email_verified')).toBe(true);
    expect(typeof value(claims, 'bff:session_expires_in')).toBe('number');
  });

  it("userClaimValues: 'string' (Duende's shape): every user-claim value is a string; bff:* keep Duende's types", async () => {
    const [asJson, asStrings] = await Promise.all([claimsOf(json), claimsOf(strings)]);
    const user = asStrings.filter((c) => !c.type.startsWith('bff:'));
    expect(user.length).toBeGreaterThan(3);
    for (const claim of user) expect(typeof claim.value, claim.type).toBe('string');
    expect(value(asStrings, 'email_verified')).toBe('true');
    expect(value(asStrings, 'sub')).toBe('alice');
    // The same claims, only their value types differ.
    expect(user.map((c) => c.type).sort()).toEqual(
      asJson
        .filter((c) => !c.type.startsWith('bff:'))
        .map((c) => c.type)
        .sort(),
    );
    // Per-user claims (iss, sid and auth_time differ between the two sign-ins) convert one to one.
    for (const type of ['sub', 'name', 'given_name', 'family_name', 'email', 'email_verified']) {
      const original = value(asJson, type);
      expect(original, type).toBeDefined();
      expect(value(asStrings, type), type).toBe(typeof original === 'string' ? original : String(original));
    }
    expect(typeof value(asStrings, 'bff:session_expires_in')).toBe('number');
    expect(value(asStrings, 'bff:logout_url')).toMatch(/^\/bff\/logout\?sid=/);
  });

  it('userClaimValues: anything else is refused at creation with the fix', () => {
    const base = {
      issuer: 'http://127.0.0.1:4000',
      clientId: 'bff',
      clientSecret: 'x',
      baseUrl: 'http://localhost:3000',
      sessionSecret: 'a'.repeat(32),
    };
    expect(resolveConfig(base).userClaimValues).toBe('json');
    expect(() => resolveConfig({ ...base, userClaimValues: 'strings' as never })).toThrow(TypeError);
    expect(() => resolveConfig({ ...base, userClaimValues: 'strings' as never })).toThrow(
      /userClaimValues.*"json".*"string"/,
    );
  });
});
