// Refresh and the ID token (SECURITY R3, R6): a refresh asks for nothing beyond the original grant, and
// a refreshed ID token with another issuer, a bad signature, a changed auth_time (or any other claim
// the session rests on) ends the session with 401. Real sample IdP; the tap rewrites token responses.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertNoSecrets,
  jsonResponse,
  SESSION_SECRET,
  type Stack,
  sessionCookie,
  signIn,
  startStack,
} from './support-core/stack.js';

/** The admin API's handle of the session behind a session cookie value (`s:<id>.<mac>`). */
const handleOf = (cookie: string) =>
  createHash('sha256')
    .update(decodeURIComponent(cookie).slice(2).split('.')[0]!)
    .digest('base64url')
    .slice(0, 16);

const payloadOf = (jwt: string) =>
  JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;

const AUTH_TIME = Math.floor(Date.now() / 1000) - 5;

describe('refresh and the ID token', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    assertNoSecrets(stack.logger.lines.join('\n'), [...stack.tap.tokens, SESSION_SECRET, 'bff-secret']);
    await stack?.close();
  });

  const whoami = (cookie: string) =>
    fetch(`${stack.bff.url}/local/whoami`, {
      headers: { cookie: `__Host-bff=${cookie}`, 'x-csrf': '1', 'sec-fetch-site': 'same-origin' },
    });
  const user = (cookie: string) =>
    fetch(`${stack.bff.url}/bff/user`, { headers: { cookie: `__Host-bff=${cookie}`, 'x-csrf': '1' } });
  const refreshes = () => stack.idp.counters.token('refresh_token');

  it('R3: the refresh request carries no scope and gets no scope beyond the original grant', async () => {
    const bodies: URLSearchParams[] = [];
    const scopes: string[] = [];
    stack.tap.intercept = async (url, init) => {
      if (url.pathname !== '/token') return undefined;
      if (init?.body instanceof URLSearchParams) bodies.push(new URLSearchParams(init.body));
      const json = (await (await fetch(url, init)).json()) as Record<string, unknown>;
      scopes.push(String(json.scope));
      return jsonResponse(json);
    };
    try {
      const { browser } = await signIn(stack);
      const cookie = (await sessionCookie(browser, stack))!;
      stack.clock.advance(400);
      expect((await whoami(cookie)).status).toBe(200);
    } finally {
      stack.tap.intercept = undefined;
    }
    const [code, refresh] = bodies;
    expect(code?.get('grant_type')).toBe('authorization_code');
    expect(refresh?.get('grant_type')).toBe('refresh_token');
    expect([...refresh!.keys()].every((k) => ['grant_type', 'refresh_token', 'resource'].includes(k))).toBe(
      true,
    );
    expect(refresh!.has('scope')).toBe(false);
    const granted = new Set(scopes[0]!.split(' '));
    expect(scopes[1]!.split(' ').every((s) => granted.has(s))).toBe(true);
  });

  /**
   * Signs in (the login's ID token re-signed by the IdP with an `auth_time`, which this OP only sends
   * when asked), expires the access token and answers the refresh with `rewrite(idToken)`.
   */
  async function refreshWith(rewrite: (idToken: string) => Promise<string> | string) {
    stack.tap.intercept = async (url, init) => {
      if (url.pathname !== '/token') return undefined;
      const json = (await (await fetch(url, init)).json()) as Record<string, unknown>;
      const id_token = await stack.idp.sign({ ...payloadOf(String(json.id_token)), auth_time: AUTH_TIME });
      return jsonResponse({ ...json, id_token });
    };
    let signedIn: Awaited<ReturnType<typeof signIn>>;
    try {
      signedIn = await signIn(stack);
    } finally {
      stack.tap.intercept = undefined;
    }
    const cookie = (await sessionCookie(signedIn.browser, stack))!;
    expect((await user(cookie)).status).toBe(200);
    stack.clock.advance(400);
    const before = refreshes();
    stack.tap.intercept = async (url, init) => {
      if (url.pathname !== '/token') return undefined;
      const json = (await (await fetch(url, init)).json()) as Record<string, unknown>;
      expect(typeof json.id_token).toBe('string');
      return jsonResponse({ ...json, id_token: await rewrite(String(json.id_token)) });
    };
    try {
      const res = await whoami(cookie);
      return { status: res.status, body: await res.json(), cookie, refreshed: refreshes() - before };
    } finally {
      stack.tap.intercept = undefined;
    }
  }

  // Refreshed ID tokens carry the login's auth_time, as OIDC Core §12.2 requires.
  const resign =
    (change: Record<string, unknown>) =>
    (idToken: string): Promise<string> => {
      const payload: Record<string, unknown> = { ...payloadOf(idToken), auth_time: AUTH_TIME, ...change };
      for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
      return stack.idp.sign(payload);
    };

  it.each<[string, (idToken: string) => Promise<string> | string]>([
    ['another iss', resign({ iss: 'https://evil.example' })],
    [
      'a bad signature',
      (idToken) => {
        const [h, p, sig] = idToken.split('.');
        return `${h}.${p}.${sig!.slice(0, -6)}${sig!.endsWith('AAAAAA') ? 'BBBBBB' : 'AAAAAA'}`;
      },
    ],
    ['a changed auth_time', resign({ auth_time: AUTH_TIME + 60 })],
    ['an auth_time that is not a number', resign({ auth_time: 'yesterday' })],
    ['another sub', resign({ sub: 'mallory' })],
    ['an azp of another client', resign({ azp: 'someone-else' })],
    ['no sub', resign({ sub: undefined })],
  ])(
    'R6: a refreshed ID token with %s → 401 ERR_BFF_SESSION_ENDED and the session is destroyed',
    async (_name, rewrite) => {
      const { status, body, cookie, refreshed } = await refreshWith(rewrite);
      expect(refreshed).toBe(1);
      expect(status).toBe(401);
      expect(body).toEqual({ error: 'ERR_BFF_SESSION_ENDED' });
      expect((await user(cookie)).status).toBe(401);
      const left = await stack.bff.app.bff.sessions.list({ iss: stack.idp.issuer, sub: 'alice' });
      expect(left.map((s) => s.handle)).not.toContain(handleOf(cookie));
    },
  );

  it('R6 control: the same ID token re-signed unchanged keeps the session (the cases above fail for their change)', async () => {
    const { status, cookie, refreshed } = await refreshWith(resign({}));
    expect(refreshed).toBe(1);
    expect(status).toBe(200);
    expect((await user(cookie)).status).toBe(200);
    const live = await stack.bff.app.bff.sessions.list({ iss: stack.idp.issuer, sub: 'alice' });
    expect(live.map((s) => s.handle)).toContain(handleOf(cookie));
  });
});
