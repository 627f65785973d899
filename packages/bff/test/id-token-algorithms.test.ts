// One algorithm policy for ID tokens (login, refresh) and logout tokens (SECURITY L17, L9, B2, R6):
// the registered `idTokenSignedResponseAlg`, else the OP's advertised set minus `none` and HS*.
// End to end with the real sample IdP signing ES256 and PS256; EdDSA and PS256 in unit tests of the
// policy and the logout-token validator.
import { randomUUID } from 'node:crypto';
import { createBff } from '@gatehouse/bff';
import { generateSigningJwk, type JWK } from '@gatehouse/sample-idp';
import type { TestBrowser } from '@gatehouse/testing';
import {
  base64url,
  type CryptoKey,
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  type JWTPayload,
  SignJWT,
} from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKCHANNEL_LOGOUT_EVENT, validateLogoutToken } from '../src/lib/backchannel/validate.js';
import type { BffError } from '../src/lib/errors.js';
import { hasValidSignature, type IdTokenPolicy, resolveIdTokenAlgorithms } from '../src/lib/id-token.js';
import {
  getUser,
  jsonResponse,
  SESSION_SECRET,
  type Stack,
  sessionCookie,
  signIn,
  startLoginUntilCallback,
  startStack,
} from './support-core/stack.js';

const now = () => Math.floor(Date.now() / 1000);
const payloadOf = (jwt: string) =>
  JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as JWTPayload;
const headerOf = (jwt: string) =>
  JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString()) as { alg: string; kid?: string };

function logoutClaims(issuer: string, over: Record<string, unknown> = {}) {
  return {
    iss: issuer,
    aud: 'bff',
    iat: now(),
    exp: now() + 120,
    jti: randomUUID(),
    events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
    ...over,
  };
}

const postLogout = (url: string, token: string) =>
  fetch(`${url}/bff/backchannel`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ logout_token: token }).toString(),
  });

const whoami = (stack: Stack, browser: TestBrowser) =>
  browser.fetch(`${stack.bff.url}/local/whoami`, {
    headers: { 'x-csrf': '1' },
    initiator: `${stack.bff.url}/`,
  });

describe('L17 policy (unit)', () => {
  it('L17: registered alg wins; else the advertised set minus none and HS*; RS256 when nothing is advertised', () => {
    expect(resolveIdTokenAlgorithms('ES256', ['RS256', 'ES256'])).toEqual(['ES256']);
    expect(resolveIdTokenAlgorithms('PS256', undefined)).toEqual(['PS256']);
    expect(
      resolveIdTokenAlgorithms(undefined, ['none', 'HS256', 'HS512', 'RS256', 'PS256', 'EdDSA']),
    ).toEqual(['RS256', 'PS256', 'EdDSA']);
    expect(resolveIdTokenAlgorithms(undefined, undefined)).toEqual(['RS256']);
  });

  it('L17: an OP advertising only none/HS*, or not listing the registered alg → ERR_BFF_CONFIGURATION (500)', () => {
    for (const [registered, advertised] of [
      [undefined, ['none', 'HS256']],
      [undefined, []],
      ['ES256', ['RS256']],
    ] as const) {
      let error: BffError | undefined;
      try {
        resolveIdTokenAlgorithms(registered, advertised);
      } catch (err) {
        error = err as BffError;
      }
      expect(error).toMatchObject({ code: 'ERR_BFF_CONFIGURATION', status: 500 });
    }
  });

  it('L17: idTokenSignedResponseAlg is validated at creation (none, HS*, unknown → TypeError that says the fix)', () => {
    const base = {
      issuer: 'http://127.0.0.1:1',
      clientId: 'bff',
      clientSecret: 'x',
      baseUrl: 'http://localhost:3000',
      sessionSecret: SESSION_SECRET,
    };
    for (const bad of ['none', 'HS256', 'ES257', '', 42]) {
      expect(() => createBff({ ...base, idTokenSignedResponseAlg: bad as string })).toThrow(
        /idTokenSignedResponseAlg.*one of RS256.*"none" and HS\* are never accepted/,
      );
    }
    for (const good of ['ES256', 'PS256', 'EdDSA', 'RS512']) {
      expect(() => createBff({ ...base, idTokenSignedResponseAlg: good })).not.toThrow();
    }
  });

  /** A policy over a local key set (the algorithms the way the BFF resolves them). */
  async function policyFor(algs: string[], registered?: string) {
    const keys: Record<string, { privateKey: CryptoKey; jwk: JWK }> = {};
    for (const alg of algs) {
      const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
      keys[alg] = { privateKey, jwk: { ...(await exportJWK(publicKey)), kid: `k-${alg}`, alg, use: 'sig' } };
    }
    const jwks = createLocalJWKSet({ keys: Object.values(keys).map((k) => k.jwk) });
    const policy: IdTokenPolicy = {
      algorithms: resolveIdTokenAlgorithms(registered, [...algs, 'HS256', 'none']),
      keys: { getKey: jwks },
    };
    const sign = (alg: string, payload: JWTPayload) =>
      new SignJWT(payload).setProtectedHeader({ alg, kid: `k-${alg}` }).sign(keys[alg]!.privateKey);
    return { policy, jwks, sign };
  }

  it('L17 B2: PS256 and EdDSA logout tokens verify under the advertised policy; with PS256 registered, EdDSA is refused', async () => {
    const issuer = 'https://op.example';
    const open = await policyFor(['PS256', 'EdDSA']);
    const expect_ = (algorithms: readonly string[]) => ({
      issuer,
      clientId: 'bff',
      algorithms,
      requireTyp: false,
      maxLifetime: 600,
      clockTolerance: 30,
    });
    for (const alg of ['PS256', 'EdDSA']) {
      const token = await open.sign(alg, logoutClaims(issuer, { sid: 's1' }));
      const result = await validateLogoutToken(token, open.jwks, expect_(open.policy.algorithms));
      expect(result).toMatchObject({ ok: true, claims: { sid: 's1' } });
    }
    const registered = resolveIdTokenAlgorithms('PS256', ['PS256', 'EdDSA']);
    const eddsa = await open.sign('EdDSA', logoutClaims(issuer, { sid: 's1' }));
    expect(await validateLogoutToken(eddsa, open.jwks, expect_(registered))).toEqual({
      ok: false,
      reason: 'alg',
    });
    const ps = await open.sign('PS256', logoutClaims(issuer, { sid: 's1' }));
    expect((await validateLogoutToken(ps, open.jwks, expect_(registered))).ok).toBe(true);
    // HS256 keyed with a public key, and alg none: never, whatever the OP advertises.
    const hs = await new SignJWT(logoutClaims(issuer, { sid: 's1' }))
      .setProtectedHeader({ alg: 'HS256' })
      .sign(new TextEncoder().encode('a-public-key-used-as-an-hmac-secret'));
    expect(await validateLogoutToken(hs, open.jwks, expect_(['HS256', 'PS256']))).toEqual({
      ok: false,
      reason: 'alg',
    });
    const none = `${base64url.encode('{"alg":"none"}')}.${base64url.encode(JSON.stringify(logoutClaims(issuer)))}.`;
    expect(await validateLogoutToken(none, open.jwks, expect_(['none', 'PS256']))).toEqual({
      ok: false,
      reason: 'alg',
    });
  });

  it('L17 L9: PS256 and EdDSA ID-token signatures verify; an alg outside the policy or a bad signature does not', async () => {
    const { policy, sign } = await policyFor(['PS256', 'EdDSA']);
    const claims = { iss: 'https://op.example', sub: 'alice', aud: 'bff', iat: now(), exp: now() + 60 };
    expect(await hasValidSignature(policy, await sign('PS256', claims))).toBe(true);
    expect(await hasValidSignature(policy, await sign('EdDSA', claims))).toBe(true);
    const registered = { ...policy, algorithms: resolveIdTokenAlgorithms('EdDSA', ['PS256', 'EdDSA']) };
    expect(await hasValidSignature(registered, await sign('PS256', claims))).toBe(false);
    const good = await sign('EdDSA', claims);
    const tampered = `${good.split('.').slice(0, 2).join('.')}.${base64url.encode(new Uint8Array(64))}`;
    expect(await hasValidSignature(policy, tampered)).toBe(false);
  });
});

describe('L17: an OP that signs with ES256 (default policy from its metadata)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ idp: { signingAlg: 'ES256' } });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('L17: login, refresh and back-channel logout all work end to end', async () => {
    const { browser, result } = await signIn(stack);
    const callback = result.hops.find((h) => h.url.includes('/bff/callback'));
    expect(callback?.status).toBe(302);
    expect(stack.tap.tokens.size).toBeGreaterThan(0);
    const idToken = [...stack.tap.tokens].find(
      (t) => t.split('.').length === 3 && payloadOf(t).nonce !== undefined,
    )!;
    expect(headerOf(idToken).alg).toBe('ES256');
    expect((await getUser(browser, stack)).status).toBe(200);

    // What the IdP itself answered to the refresh (its own event, the response body as sent).
    const refreshed: Record<string, unknown>[] = [];
    const onGrant = (ctx: { oidc: { params?: unknown }; body?: unknown }) => {
      const params = ctx.oidc.params as { grant_type?: unknown } | undefined;
      if (params?.grant_type === 'refresh_token') refreshed.push({ ...(ctx.body as object) });
    };
    stack.idp.provider.on('grant.success', onGrant);
    try {
      stack.clock.advance(400); // the access token expired: the next call refreshes (ES256 ID token)
      expect((await whoami(stack, browser)).status).toBe(200);
    } finally {
      stack.idp.provider.off('grant.success', onGrant);
    }
    expect(stack.idp.counters.token('refresh_token')).toBe(1);
    // R6 L17: the refresh carried a new ES256 ID token, and the BFF, which checks a refreshed ID token's
    // signature with the same policy and ends the session when it fails, kept the session.
    expect(refreshed).toHaveLength(1);
    const refreshedIdToken = refreshed[0]!.id_token;
    expect(typeof refreshedIdToken).toBe('string');
    expect(refreshedIdToken).not.toBe(idToken);
    expect(headerOf(refreshedIdToken as string).alg).toBe('ES256');
    expect(payloadOf(refreshedIdToken as string)).toMatchObject({ iss: stack.idp.issuer, sub: 'alice' });
    expect((await getUser(browser, stack)).status).toBe(200);

    // IdP-side sign-out delivers an ES256 logout token; it must end the session (was 400 `alg`).
    const ended = await stack.idp.endSessions('alice');
    expect(ended.failed).toEqual([]);
    expect(ended.notified).toEqual(['bff']);
    expect((await getUser(browser, stack)).status).toBe(401);
    expect(stack.logger.lines.some((l) => l.includes('"reason":"alg"'))).toBe(false);
  });

  it('L17: an RS256 logout token (a key the OP does not publish) → 400, the session kept', async () => {
    const { browser } = await signIn(stack, 'bob');
    const { privateKey } = await generateKeyPair('RS256');
    const token = await new SignJWT(logoutClaims(stack.idp.issuer, { sub: 'bob' }))
      .setProtectedHeader({ alg: 'RS256', kid: stack.idp.publicJwks().keys[0]!.kid })
      .sign(privateKey);
    expect((await postLogout(stack.bff.url, token)).status).toBe(400);
    expect((await getUser(browser, stack)).status).toBe(200);
  });
});

describe('L17: an OP that signs with PS256', () => {
  it('L17: login, refresh and back-channel logout work', async () => {
    const stack = await startStack({ idp: { signingAlg: 'PS256' } });
    try {
      const { browser } = await signIn(stack);
      expect((await getUser(browser, stack)).status).toBe(200);
      stack.clock.advance(400);
      expect((await whoami(stack, browser)).status).toBe(200);
      expect(stack.idp.counters.token('refresh_token')).toBe(1);
      expect((await stack.idp.endSessions('alice')).notified).toEqual(['bff']);
      expect((await getUser(browser, stack)).status).toBe(401);
    } finally {
      await stack.close();
    }
  });
});

describe('L17: ES256 registered, the OP also publishing an RSA key', () => {
  let ec: JWK;
  let rsa: JWK;
  let registered: Stack;
  let open: Stack;
  beforeAll(async () => {
    ec = await generateSigningJwk('ES256');
    rsa = await generateSigningJwk('RS256');
    const idp = { signingAlg: 'ES256' as const, signingKeys: { keys: [ec, rsa] } };
    registered = await startStack({ idp, bffOptions: { idTokenSignedResponseAlg: 'ES256' } });
    open = await startStack({ idp });
  });
  afterAll(async () => {
    await registered?.close();
    await open?.close();
  });

  /** Runs a login whose token response carries the real ID token re-signed with the OP's RSA key. */
  async function loginWithRs256IdToken(stack: Stack) {
    const { browser, callbackUrl } = await startLoginUntilCallback(stack);
    stack.tap.intercept = async (url, init) => {
      if (url.pathname !== '/token') return undefined;
      const json = (await (await fetch(url, init)).json()) as Record<string, unknown>;
      const id_token = await stack.idp.sign(payloadOf(String(json.id_token)), { kid: rsa.kid });
      expect(headerOf(id_token).alg).toBe('RS256');
      return jsonResponse({ ...json, id_token });
    };
    try {
      const before = stack.tap.count('/me');
      const res = await browser.fetch(callbackUrl, { navigation: true, initiator: stack.idp.issuer });
      return { res, userinfoCalls: stack.tap.count('/me') - before, browser };
    } finally {
      stack.tap.intercept = undefined;
    }
  }

  it('L17 L9: an RS256 ID token from that OP → 400 at login, no session, no UserInfo call', async () => {
    const { res, userinfoCalls } = await loginWithRs256IdToken(registered);
    expect(res.status).toBe(400);
    expect(res.headers.getSetCookie().some((c) => /^__Host-bff=[^;]/.test(c))).toBe(false);
    expect(userinfoCalls).toBe(0);
    // Without the registered alg the OP's advertised set applies, and this OP lists RS256: accepted.
    const control = await loginWithRs256IdToken(open);
    expect(control.res.status).toBe(302);
  });

  it('L17: the genuine ES256 login works; an RS256 refreshed ID token → 401 and the session is gone (R6)', async () => {
    const { browser } = await signIn(registered);
    expect((await getUser(browser, registered)).status).toBe(200);
    const cookie = (await sessionCookie(browser, registered))!;
    registered.clock.advance(400);
    registered.tap.intercept = async (url, init) => {
      if (url.pathname !== '/token') return undefined;
      const json = (await (await fetch(url, init)).json()) as Record<string, unknown>;
      if (typeof json.id_token !== 'string') return jsonResponse(json);
      return jsonResponse({
        ...json,
        id_token: await registered.idp.sign(payloadOf(json.id_token), { kid: rsa.kid }),
      });
    };
    try {
      const res = await whoami(registered, browser);
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ error: 'ERR_BFF_SESSION_ENDED' });
    } finally {
      registered.tap.intercept = undefined;
    }
    expect(await registered.bff.app.bff.sessions.list({ iss: registered.idp.issuer, sub: 'alice' })).toEqual(
      [],
    );
    const again = await fetch(`${registered.bff.url}/bff/user`, {
      headers: { 'x-csrf': '1', cookie: `__Host-bff=${cookie}` },
    });
    expect(again.status).toBe(401);
  });

  it('L17 B2: an RS256 logout token from that OP → 400, no session touched; the ES256 one → 200 and the session ends', async () => {
    const { browser } = await signIn(registered, 'bob');
    const rs = await registered.idp.sign(logoutClaims(registered.idp.issuer, { sub: 'bob' }), {
      kid: rsa.kid,
    });
    expect(headerOf(rs).alg).toBe('RS256');
    expect((await postLogout(registered.bff.url, rs)).status).toBe(400);
    expect((await getUser(browser, registered)).status).toBe(200);
    const es = await registered.idp.sign(logoutClaims(registered.idp.issuer, { sub: 'bob' }));
    expect(headerOf(es).alg).toBe('ES256');
    expect((await postLogout(registered.bff.url, es)).status).toBe(200);
    expect((await getUser(browser, registered)).status).toBe(401);
  });
});
