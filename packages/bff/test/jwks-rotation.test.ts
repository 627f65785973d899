// Signing-key rotation and unknown `kid`s (SECURITY L10, L10a) for ID tokens and logout tokens alike:
// one key source per BFF refetches the OP's JWKS at once on an unknown `kid`, then at most once per
// cooldown. Real sample IdP (rotateSigningKey, sign), real HTTP; JWKS requests counted by the tap.
import { randomUUID } from 'node:crypto';
import { TestBrowser } from '@gatehouse/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { BACKCHANNEL_LOGOUT_EVENT } from '../src/lib/backchannel/validate.js';
import { hasValidSignature, idTokenPolicy } from '../src/lib/id-token.js';
import { JWKS_REFETCH_COOLDOWN } from '../src/lib/jwks.js';
import {
  getUser,
  jsonResponse,
  type Stack,
  signIn,
  startLoginUntilCallback,
  startStack,
} from './support-core/stack.js';

const JWKS_PATH = '/jwks';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

const callbackStatus = (result: Awaited<ReturnType<typeof signIn>>['result']) =>
  result.hops.find((h) => h.url.includes('/bff/callback'))?.status;

function logoutClaims(s: Stack, over: Record<string, unknown> = {}) {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: s.idp.issuer,
    aud: 'bff',
    iat: now,
    exp: now + 120,
    jti: randomUUID(),
    events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
    sid: 'no-such-sid',
    ...over,
  };
}

const postLogout = (s: Stack, token: string) =>
  fetch(`${s.bff.url}/bff/backchannel`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ logout_token: token }).toString(),
  });

describe('L10a key rotation', () => {
  it('L10a: the OP rotates its key 5 s after the BFF fetched its JWKS → the next login succeeds with exactly one extra JWKS request', async () => {
    stack = await startStack();
    const first = await signIn(stack);
    expect(callbackStatus(first.result)).toBe(302);
    const before = stack.tap.count(JWKS_PATH);
    expect(before).toBe(1);

    stack.clock.advance(5);
    await stack.idp.rotateSigningKey();
    const second = await signIn(stack);
    expect(callbackStatus(second.result)).toBe(302);
    expect((await getUser(second.browser, stack)).status).toBe(200);
    expect(stack.tap.count(JWKS_PATH) - before).toBe(1);

    // The new key is cached now: later logins fetch nothing.
    expect(callbackStatus((await signIn(stack, 'bob')).result)).toBe(302);
    expect(stack.tap.count(JWKS_PATH) - before).toBe(1);
  });

  it('L10a: a logout token signed with a key rotated in moments ago is accepted at once (one JWKS refetch)', async () => {
    stack = await startStack();
    const { browser } = await signIn(stack);
    const before = stack.tap.count(JWKS_PATH);
    stack.clock.advance(2);
    await stack.idp.rotateSigningKey();
    const result = await stack.idp.endSessions('alice');
    expect(result.failed).toEqual([]);
    expect(result.notified).toEqual(['bff']);
    expect((await getUser(browser, stack)).status).toBe(401);
    expect(stack.tap.count(JWKS_PATH) - before).toBe(1);
  });

  it('L10 L10a: a refreshed ID token signed with a rotated key keeps the session (one JWKS refetch)', async () => {
    stack = await startStack();
    const { browser } = await signIn(stack);
    const before = stack.tap.count(JWKS_PATH);
    await stack.idp.rotateSigningKey();
    stack.clock.advance(400); // access token expired: the next call refreshes, with a new-key ID token
    const res = await browser.fetch(`${stack.bff.url}/local/whoami`, {
      headers: { 'x-csrf': '1' },
      initiator: `${stack.bff.url}/`,
    });
    expect(res.status).toBe(200);
    expect(stack.idp.counters.token('refresh_token')).toBe(1);
    expect(stack.tap.count(JWKS_PATH) - before).toBe(1);
  });
});

describe('L10 unknown kids are rate-limited', () => {
  it('L10: 100 logout tokens with random kids → 400 each and at most one JWKS fetch per cooldown', async () => {
    stack = await startStack();
    const s = stack;
    await signIn(s); // keys cached
    const before = s.tap.count(JWKS_PATH);
    const burst = async () => {
      const tokens = await Promise.all(
        Array.from({ length: 100 }, () => s.idp.sign(logoutClaims(s), { kid: randomUUID() })),
      );
      const statuses = await Promise.all(tokens.map(async (t) => (await postLogout(s, t)).status));
      expect(statuses).toEqual(Array(100).fill(400));
    };
    await burst();
    expect(s.tap.count(JWKS_PATH) - before).toBe(1);
    s.clock.advance(JWKS_REFETCH_COOLDOWN / 2);
    await burst();
    expect(s.tap.count(JWKS_PATH) - before).toBe(1);
    s.clock.advance(JWKS_REFETCH_COOLDOWN / 2);
    await burst(); // the next cooldown allows one more
    expect(s.tap.count(JWKS_PATH) - before).toBe(2);
    // A genuine token still works meanwhile, without another fetch.
    expect((await postLogout(s, await s.idp.sign(logoutClaims(s)))).status).toBe(200);
    expect(s.tap.count(JWKS_PATH) - before).toBe(2);
  });

  it('L10: 100 ID tokens with random kids → none verifies, at most one JWKS fetch per cooldown', async () => {
    stack = await startStack();
    const s = stack;
    await signIn(s);
    const policy = idTokenPolicy(await s.bff.app.bff.context.getOidcConfiguration());
    const before = s.tap.count(JWKS_PATH);
    const now = Math.floor(Date.now() / 1000);
    const idTokens = await Promise.all(
      Array.from({ length: 100 }, () =>
        s.idp.sign(
          { iss: s.idp.issuer, sub: 'alice', aud: 'bff', iat: now, exp: now + 60 },
          { kid: randomUUID() },
        ),
      ),
    );
    const results = await Promise.all(idTokens.map((t) => hasValidSignature(policy, t)));
    expect(results).toEqual(Array(100).fill(false));
    expect(s.tap.count(JWKS_PATH) - before).toBe(1);
  });

  it('L10: an ID token with an unknown kid at the callback → 400, no session, no UserInfo call', async () => {
    stack = await startStack();
    const s = stack;
    const { browser, callbackUrl } = await startLoginUntilCallback(s);
    s.tap.intercept = async (url, init) => {
      if (url.pathname !== '/token') return undefined;
      const json = (await (await fetch(url, init)).json()) as Record<string, unknown>;
      const payload = JSON.parse(Buffer.from(String(json.id_token).split('.')[1]!, 'base64url').toString());
      return jsonResponse({ ...json, id_token: await s.idp.sign(payload, { kid: randomUUID() }) });
    };
    const res = await browser.fetch(callbackUrl, { navigation: true, initiator: s.idp.issuer });
    s.tap.intercept = undefined;
    expect(res.status).toBe(400);
    expect(res.headers.getSetCookie().some((c) => /^__Host-bff=[^;]/.test(c))).toBe(false);
    expect(s.tap.count('/me')).toBe(0);
  });

  it('L10: no kid with exactly one suitable key → accepted; with two (after a rotation) → refused', async () => {
    stack = await startStack();
    const s = stack;
    const policy = idTokenPolicy(await s.bff.app.bff.context.getOidcConfiguration());
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: s.idp.issuer, sub: 'alice', aud: 'bff', iat: now, exp: now + 60 };
    expect(await hasValidSignature(policy, await s.idp.sign(claims, { kid: undefined }))).toBe(true);
    await s.idp.rotateSigningKey();
    // Two RSA keys published: without a kid the signer is ambiguous (OIDF kid-absent-multiple-jwks).
    const noKid = await s.idp.sign(claims, { kid: undefined });
    s.clock.advance(JWKS_REFETCH_COOLDOWN); // let the refetch happen, so both keys are known
    expect(await hasValidSignature(policy, await s.idp.sign(claims))).toBe(true);
    expect(await hasValidSignature(policy, noKid)).toBe(false);
  });
});

describe('L10 the OP key endpoint failing', () => {
  it('JWKS unreachable at the first login → 503 page (not 400), no session; logout tokens → 503 with Retry-After; both recover', async () => {
    stack = await startStack();
    const s = stack;
    s.tap.intercept = (url) =>
      url.pathname === JWKS_PATH ? new Response('down', { status: 503 }) : undefined;
    const { browser, callbackUrl } = await startLoginUntilCallback(s);
    const res = await browser.fetch(callbackUrl, { navigation: true, initiator: s.idp.issuer });
    expect(res.status).toBe(503);
    expect(res.headers.getSetCookie().some((c) => /^__Host-bff=[^;]/.test(c))).toBe(false);
    expect(s.tap.count('/me')).toBe(0);
    s.clock.advance(3); // past the failure back-off
    const logout = await postLogout(s, await s.idp.sign(logoutClaims(s)));
    expect(logout.status).toBe(503);
    expect(logout.headers.get('retry-after')).toBe('5');
    expect(await logout.json()).toEqual({ error: 'temporarily_unavailable' });

    s.tap.intercept = undefined;
    s.clock.advance(3);
    const again = await signIn(s);
    expect(callbackStatus(again.result)).toBe(302);
    expect((await postLogout(s, await s.idp.sign(logoutClaims(s)))).status).toBe(200);
  });

  it('R5a R6 L10a: the OP rotated its key and its JWKS is down when a refresh answers → 503 with Retry-After, the rotated refresh token is kept, and once the keys load the same cookie works', async () => {
    stack = await startStack();
    const s = stack;
    const { browser } = await signIn(s);
    await s.idp.rotateSigningKey(); // the refreshed ID token names a kid the BFF has not seen
    s.tap.intercept = (url) =>
      url.pathname === JWKS_PATH ? new Response('down', { status: 503 }) : undefined;
    s.clock.advance(400); // access token expired: this call must refresh
    const call = () =>
      browser.fetch(`${s.bff.url}/local/whoami`, { headers: { 'x-csrf': '1' }, initiator: `${s.bff.url}/` });
    const during = await call();
    expect(during.status).toBe(503);
    expect(Number(during.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await during.json()).toMatchObject({ error: 'ERR_BFF_IDP_UNAVAILABLE' });
    // The OP answered and rotated the refresh token: the one the session started with is spent.
    expect(s.idp.counters.token('refresh_token')).toBe(1);

    s.tap.intercept = undefined;
    s.clock.advance(11); // past the session's back-off and the key fetch's
    const after = await call();
    expect(after.status, await after.clone().text()).toBe(200);
    // The second refresh presented the rotated refresh token (the spent one would be invalid_grant).
    expect(s.idp.counters.token('refresh_token')).toBe(2);
    expect((await getUser(browser, s)).status).toBe(200);
  });

  it('a fetched key set is refetched after its maximum age; an OP key endpoint down then keeps the old set', async () => {
    stack = await startStack();
    const s = stack;
    await signIn(s);
    const before = s.tap.count(JWKS_PATH);
    s.tap.intercept = (url) =>
      url.pathname === JWKS_PATH ? new Response('down', { status: 503 }) : undefined;
    s.clock.advance(301);
    const browser = new TestBrowser();
    const done = await browser.login(`${s.bff.url}/bff/login`, { username: 'bob', password: 'bob' });
    expect(done.hops.find((h) => h.url.includes('/bff/callback'))?.status).toBe(302);
    expect(s.tap.count(JWKS_PATH) - before).toBe(1);
    s.tap.intercept = undefined;
  });
});
