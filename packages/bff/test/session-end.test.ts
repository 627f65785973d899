// Nothing of a session outlives it in the BFF's process: once a session ends here (logout, back-channel
// logout, expiry, the per-user cap) its decrypted tokens, refresh back-off,
// rate-bucket keys and verified cookie are dropped, and a cookie sent again afterwards puts none of them
// back. A long-running host would otherwise gather them for every session that ever ended (the soak
// measured it). Records of sessions that merely go quiet are swept once they are stale.
import type { IncomingMessage } from 'node:http';
import type { TestBrowser } from '@gatehouse/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKCHANNEL_LOGOUT_EVENT } from '../src/lib/backchannel/validate.js';
import { retainedBy } from '../src/lib/retention.js';
import { getUser, type Stack, sessionCookie, signIn, startStack } from './support-core/stack.js';

const EVERYTHING = ['tokens', 'rate keys', 'verified cookie'];

/** The session id inside a signed cookie value (`s:<id>.<mac>`, URL-encoded). */
function idOf(cookieValue: string): string {
  const value = decodeURIComponent(cookieValue);
  return value.slice(2, value.lastIndexOf('.'));
}

/** A signed-in browser, with its session used the way proxied calls use it (token, rate bucket). */
async function activeSession(stack: Stack, user = 'alice') {
  const { browser } = await signIn(stack, user);
  const value = (await sessionCookie(browser, stack))!;
  const req = { headers: { cookie: `__Host-bff=${value}` } } as IncomingMessage;
  const { bff } = stack.bff.app;
  await bff.getAccessToken(req);
  await bff.context.consumeRate(req, '/api', 100, 10);
  const id = idOf(value);
  return { browser, req, id, retained: () => retainedBy(bff, id) };
}

const postLogout = (browser: TestBrowser, stack: Stack) =>
  browser.fetch(`${stack.bff.url}/bff/logout`, {
    method: 'POST',
    headers: { 'x-csrf': '1' },
    initiator: `${stack.bff.url}/`,
  });

describe('in-process state of a session that ended', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack?.close());

  it('O6: POST /bff/logout drops the session’s tokens, rate keys and verified cookie; the old cookie sent again puts none back', async () => {
    const session = await activeSession(stack);
    expect(session.retained()).toEqual(EVERYTHING);
    expect((await postLogout(session.browser, stack)).status).toBe(302);
    expect(session.retained()).toEqual([]);
    // The browser still sends the dead cookie (or someone replays it): 401, and nothing comes back.
    const replay = await stack.bff.app.bff.getUser(session.req);
    expect(replay).toBeUndefined();
    await expect(stack.bff.app.bff.getAccessToken(session.req)).rejects.toMatchObject({
      code: 'ERR_BFF_NO_SESSION',
    });
    expect(session.retained()).toEqual([]);
  });

  it('B4: a back-channel logout drops the in-process state of the session it ends', async () => {
    const session = await activeSession(stack);
    const claims = (await (await getUser(session.browser, stack)).json()) as {
      type: string;
      value: string;
    }[];
    const sid = claims.find((c) => c.type === 'sid')?.value;
    expect(sid).toEqual(expect.any(String));
    const now = Math.floor(Date.now() / 1000);
    const token = await stack.idp.sign({
      iss: stack.idp.issuer,
      aud: 'bff',
      iat: now,
      exp: now + 120,
      jti: `session-end-${now}-${sid}`,
      events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
      sid,
    });
    const res = await fetch(`${stack.bff.url}/bff/backchannel`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ logout_token: token }).toString(),
    });
    expect(res.status).toBe(200);
    expect(session.retained()).toEqual([]);
  });

  it('S4: a session found expired is dropped along with its in-process state', async () => {
    const session = await activeSession(stack);
    stack.clock.advance(stack.bff.app.bff.config.idleTimeout + 1);
    try {
      expect((await getUser(session.browser, stack)).status).toBe(401);
      expect(session.retained()).toEqual([]);
    } finally {
      stack.clock.advance(-(stack.bff.app.bff.config.idleTimeout + 1));
    }
  });

  it('decrypted token records of sessions that went quiet are swept five minutes after their last use', async () => {
    const quiet = await activeSession(stack);
    expect(quiet.retained()).toEqual(EVERYTHING);
    stack.clock.advance(5 * 60 + 1);
    try {
      // Another session's record is decrypted: the sweep runs then, with no read of the quiet one.
      const busy = await activeSession(stack, 'bob');
      expect(busy.retained()).toEqual(EVERYTHING);
      // Its rate keys and verified cookie (a few hundred bytes, bounded) stay until the session ends.
      expect(quiet.retained()).toEqual(['rate keys', 'verified cookie']);
    } finally {
      stack.clock.advance(-(5 * 60 + 1));
    }
  });
});

describe('sessions ended by the per-user cap', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ bffOptions: { maxSessionsPerUser: 1 } });
  });
  afterAll(() => stack?.close());

  it('S6: the oldest session, ended by the cap, leaves nothing behind in the process', async () => {
    const first = await activeSession(stack);
    expect(first.retained()).toEqual(EVERYTHING);
    const second = await activeSession(stack);
    // Checked before the old cookie comes back (a cookie naming a gone session is dropped then too).
    expect(first.retained()).toEqual([]);
    expect(second.retained()).toEqual(EVERYTHING);
    expect((await getUser(first.browser, stack)).status).toBe(401);
  });
});
