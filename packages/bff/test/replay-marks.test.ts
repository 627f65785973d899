// Single-use marks under pressure (SECURITY B2, L4, S6) in the real createBff on the memory store, with
// the real sample IdP over real HTTP: anyone can write login-state marks (a fresh transaction cookie from
// /bff/login, then /bff/callback), so those must never push out the back-channel logout's jti marks,
// and a full jti bound must refuse (fail closed) rather than forget a mark that has not expired. Login
// states forget their oldest instead (a flood must not hold sign-ins off); the OP's single-use codes
// keep a replayed callback out, which the last test shows against the real IdP.
import { randomUUID } from 'node:crypto';
import { createMemoryStore } from '@gatehouse/bff';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKCHANNEL_LOGOUT_EVENT } from '../src/lib/backchannel/validate.js';
import { txCookieName } from '../src/lib/routes/login-transaction.js';
import { getUser, type Stack, signIn, startLoginUntilCallback, startStack } from './support-core/stack.js';

/** The memory store's bound per purpose in these tests. */
const MAX_MARKS = 4;

function postLogout(stack: Stack, token: string) {
  return fetch(`${stack.bff.url}/bff/backchannel`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ logout_token: token }).toString(),
  });
}

/** A logout token signed with the IdP's genuine key. */
function logoutToken(stack: Stack, claims: Record<string, unknown>) {
  const now = Math.floor(Date.now() / 1000);
  return stack.idp.sign({
    iss: stack.idp.issuer,
    aud: 'bff',
    iat: now,
    exp: now + 120,
    jti: randomUUID(),
    events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
    ...claims,
  });
}

/**
 * What an anonymous attacker can do as often as they like: start a login (no cookies), then call the
 * callback with that transaction's genuine cookie and state and a made-up code. The callback claims the
 * state (a store mark) before it looks any further. Returns the callback's status.
 */
async function spentTransaction(stack: Stack): Promise<number> {
  const start = await fetch(`${stack.bff.url}/bff/login`, { redirect: 'manual' });
  expect(start.status).toBe(302);
  const state = new URL(start.headers.get('location')!).searchParams.get('state');
  const [cookie] = start.headers.getSetCookie();
  expect(state).toBeTruthy();
  const callback = await fetch(
    `${stack.bff.url}/bff/callback?code=made-up&state=${encodeURIComponent(state!)}`,
    { redirect: 'manual', headers: { cookie: cookie!.split(';')[0]! } },
  );
  await callback.arrayBuffer();
  return callback.status;
}

/** The sample stack on a memory store bounded at MAX_MARKS marks per purpose. */
function boundedStack() {
  return startStack({
    // PAR off: the state is then in the front-channel URL, where an attacker reads it too.
    bffOptions: { store: createMemoryStore({ maxEntries: MAX_MARKS }), pushedAuthorizationRequests: 'never' },
  });
}

describe('B2 L4 S6 replay marks on the memory store', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await boundedStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('B2 S6: callbacks with spent transactions beyond the bound never evict a logout token’s jti: its replay → 400, the user’s new session survives', async () => {
    const first = await signIn(stack, 'bob');
    const token = await logoutToken(stack, { sub: 'bob' });
    expect((await postLogout(stack, token)).status).toBe(200);
    expect((await getUser(first.browser, stack)).status).toBe(401);
    const again = await signIn(stack, 'bob');

    const statuses: number[] = [];
    for (let i = 0; i < MAX_MARKS + 3; i++) statuses.push(await spentTransaction(stack));

    const replay = await postLogout(stack, token);
    expect(replay.status).toBe(400);
    expect(await replay.json()).toEqual({ error: 'invalid_request' });
    expect((await getUser(again.browser, stack)).status).toBe(200);
    // L4 S6: past the login-state bound the oldest states are forgotten, never refused: each bogus
    // callback got as far as the token endpoint (400 there), and a genuine sign-in still works.
    expect(statuses).toEqual(Array(MAX_MARKS + 3).fill(400));
    const later = await signIn(stack, 'alice');
    expect((await getUser(later.browser, stack)).status).toBe(200);
  });

  it('L4 S6: a genuine callback replayed after its state mark was forgotten → 400, no session: the OP redeems a code once', async () => {
    const { browser, callbackUrl } = await startLoginUntilCallback(stack, 'alice');
    const state = callbackUrl.searchParams.get('state')!;
    const name = txCookieName(state);
    const captured = await browser.cookie(`${stack.bff.url}/`, name);
    expect(captured).toBeTruthy();
    const callback = (cookie: string) =>
      fetch(callbackUrl, { redirect: 'manual', headers: { cookie: `${name}=${cookie}` } });
    const codesBefore = stack.idp.counters.token('authorization_code');
    const genuine = await callback(captured!);
    await genuine.arrayBuffer();
    expect(genuine.status).toBe(302);
    for (let i = 0; i < MAX_MARKS + 1; i++) await spentTransaction(stack); // the state's mark is gone

    const replay = await callback(captured!);
    await replay.arrayBuffer();
    expect(replay.status).toBe(400);
    expect(replay.headers.getSetCookie().some((c) => /^__Host-bff=[^;]/.test(c))).toBe(false);
    // The replay reached the token endpoint (its mark was forgotten) and the OP refused the used code.
    expect(stack.idp.counters.token('authorization_code') - codesBefore).toBe(2);
  });
});

describe('B2 S6 a full jti bound fails closed', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await boundedStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('B2 S6: when the jti bound is full a new logout token → 503 with Retry-After (the OP retries), nothing ended; no earlier jti is forgotten', async () => {
    const alice = await signIn(stack, 'alice');
    const tokens: string[] = [];
    for (let i = 0; i < MAX_MARKS; i++) {
      const token = await logoutToken(stack, { sid: `no-such-sid-${i}` });
      expect((await postLogout(stack, token)).status).toBe(200);
      tokens.push(token);
    }
    const refused = await postLogout(stack, await logoutToken(stack, { sub: 'alice' }));
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBeTruthy();
    expect((await getUser(alice.browser, stack)).status).toBe(200);
    for (const token of tokens) expect((await postLogout(stack, token)).status).toBe(400);
  });
});
