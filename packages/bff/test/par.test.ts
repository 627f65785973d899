// L16: pushed authorization requests (RFC 9126) against the real sample IdP. The IdP requires PAR for
// the `bff` client (requirePushedAuthorizationRequests); the refusals are the IdP's own (a wrong client
// secret, an unregistered redirect URI). Only a hung or failing PAR endpoint comes from the
// fault-injecting front (support-res/idp-front.ts), and an OP without PAR from rewritten metadata.
import { createBff } from '@gatehouse/bff';
import {
  getFreePort,
  type RunningBff,
  type RunningIdp,
  startBff,
  startIdp,
  TestBrowser,
} from '@gatehouse/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertNoSecrets,
  captureLogger,
  getUser,
  jsonResponse,
  SESSION_SECRET,
  type Stack,
  sessionCookie,
  signIn,
  startStack,
} from './support-core/stack.js';
import { type IdpFront, startIdpFront } from './support-res/idp-front.js';

const TX_COOKIE = /^__Host-bff-tx-/;

interface Push {
  authorization: string | null;
  body: URLSearchParams;
}

/** Records every pushed authorization request the BFF sends through the stack's fetch tap. */
function recordPushes(stack: Stack): Push[] {
  const pushes: Push[] = [];
  stack.tap.intercept = (url, init) => {
    if (url.pathname === '/request') {
      pushes.push({
        authorization: new Headers(init?.headers).get('authorization'),
        body: new URLSearchParams(init?.body as URLSearchParams),
      });
    }
    return undefined;
  };
  return pushes;
}

const metadataOf = async (issuer: string) =>
  (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;

const message = (html: string) => {
  const m = /postMessage\((\{.*?\}), ("[^"]+")\)/.exec(html);
  return m ? (JSON.parse(m[1]!) as { source: string; isLoggedIn: boolean }) : undefined;
};

describe('L16: PAR required by the OP (default pushedAuthorizationRequests "auto")', () => {
  let stack: Stack;
  let metadata: Record<string, unknown>;
  let pushes: Push[];
  beforeAll(async () => {
    stack = await startStack({ idp: { requirePushedAuthorizationRequests: true } });
    metadata = await metadataOf(stack.idp.issuer);
    pushes = recordPushes(stack);
  });
  afterAll(async () => {
    assertNoSecrets(stack.logger.lines.join('\n'), [...stack.tap.tokens, SESSION_SECRET, 'bff-secret']);
    await stack?.close();
  });

  it('L16: pushes with client authentication; the redirect carries only client_id and request_uri; sign-in completes', async () => {
    const before = pushes.length;
    const { browser, result } = await signIn(stack, 'alice', '/after-login');
    const login = result.hops[0]!;
    expect(login.status).toBe(302);
    const authz = new URL(login.location!);
    expect(`${authz.origin}${authz.pathname}`).toBe(metadata.authorization_endpoint);
    expect([...authz.searchParams.keys()].sort()).toEqual(['client_id', 'request_uri']);
    expect(authz.searchParams.get('client_id')).toBe('bff');
    expect(authz.searchParams.get('request_uri')).toMatch(/^urn:ietf:params:oauth:request_uri:/);
    // The transaction cookie is the same as without PAR.
    expect(login.setCookie).toHaveLength(1);
    expect(login.setCookie[0]).toMatch(
      /^__Host-bff-tx-[A-Za-z0-9_-]{16}=.+; Max-Age=600; Path=\/; HttpOnly; Secure; SameSite=Lax$/,
    );

    // Exactly one push, authenticated (client_secret_basic), holding every authorization parameter.
    expect(pushes.length - before).toBe(1);
    const push = pushes.at(-1)!;
    // client_secret_basic: the form-urlencoded id and secret (RFC 6749 §2.3.1) in a Basic header.
    const [scheme, credentials] = push.authorization!.split(' ');
    expect(scheme).toBe('Basic');
    expect(Buffer.from(credentials!, 'base64').toString('utf8').split(':').map(decodeURIComponent)).toEqual([
      'bff',
      'bff-secret',
    ]);
    expect(push.body.get('client_id')).toBe('bff');
    expect(push.body.get('response_type')).toBe('code');
    expect(push.body.get('redirect_uri')).toBe(`${stack.bff.url}/bff/callback`);
    expect(push.body.get('scope')).toBe('openid profile email offline_access api');
    expect(push.body.get('code_challenge_method')).toBe('S256');
    expect(push.body.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(push.body.get('state')!.length).toBeGreaterThanOrEqual(43);
    expect(push.body.get('nonce')!.length).toBeGreaterThanOrEqual(43);
    expect(push.body.has('client_secret')).toBe(false);
    // No authorization parameter leaks into the front channel, not even a copy.
    expect(login.location).not.toContain(push.body.get('state')!);
    expect(login.location).not.toContain(push.body.get('code_challenge')!);

    const callback = result.hops.find((h) => h.url.startsWith(`${stack.bff.url}/bff/callback`))!;
    expect(callback.status).toBe(302);
    expect(callback.location).toBe(`${stack.bff.url}/after-login`);
    expect(await sessionCookie(browser, stack)).toBeTruthy();
    const user = await getUser(browser, stack);
    expect(user.status).toBe(200);
    const claims = (await user.json()) as { type: string; value: unknown }[];
    expect(claims.find((c) => c.type === 'sub')?.value).toBe('alice');
  });

  it('L16: each request_uri is used once: the replayed authorization URL fails at the OP, no code, no session', async () => {
    const { result } = await signIn(stack, 'alice');
    const authz = result.hops[0]!.location!;
    const codeExchanges = stack.tap.count('/token', 'authorization_code');
    // Another browser (an attacker holding the URL) and the same browser both get the OP's refusal.
    for (const browser of [new TestBrowser(), new TestBrowser()]) {
      const replay = await browser.follow(authz, { initiator: `${stack.bff.url}/` });
      const back = replay.hops.find((h) => h.url.startsWith(`${stack.bff.url}/bff/callback`));
      expect(back).toBeDefined();
      const backUrl = new URL(back!.url);
      expect(backUrl.searchParams.get('error')).toBe('invalid_request_uri');
      expect(backUrl.searchParams.has('code')).toBe(false);
      expect(replay.hops.some((h) => h.url.includes('/interaction/'))).toBe(false);
      expect(replay.hops.flatMap((h) => h.setCookie).some((c) => /^__Host-bff=[^;]/.test(c))).toBe(false);
    }
    expect(stack.tap.count('/token', 'authorization_code')).toBe(codeExchanges);
  });

  it('L16: silent login (prompt=none) is pushed too, and signs in from the IdP session', async () => {
    const { browser } = await signIn(stack, 'bob');
    await browser.setCookie(
      '__Host-bff=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict',
      `${stack.bff.url}/`,
    );
    const before = pushes.length;
    const result = await browser.follow(`${stack.bff.url}/bff/silent-login`, {
      initiator: `${stack.bff.url}/`,
    });
    const authz = new URL(result.hops[0]!.location!);
    expect([...authz.searchParams.keys()].sort()).toEqual(['client_id', 'request_uri']);
    expect(pushes.length - before).toBe(1);
    expect(pushes.at(-1)!.body.get('prompt')).toBe('none');
    expect(message(result.text)).toEqual({ source: 'bff-silent-login', isLoggedIn: true });
    expect(result.hops.at(-1)!.setCookie.some((c) => /^__Host-bff=s%3A/.test(c))).toBe(true);
  });
});

describe('L16: PAR required by the OP but pushedAuthorizationRequests "never"', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      idp: { requirePushedAuthorizationRequests: true },
      bffOptions: { pushedAuthorizationRequests: 'never', errorPath: '/signin-error' },
    });
  });
  afterAll(() => stack?.close());

  it('L16: the OP refuses the front-channel request; the callback lands on the error route without a session', async () => {
    const browser = new TestBrowser();
    const result = await browser.follow(`${stack.bff.url}/bff/login`, { initiator: `${stack.bff.url}/` });
    const authz = new URL(result.hops[0]!.location!);
    // Not pushed: the whole request is in the front channel, and the OP says no.
    expect(authz.searchParams.get('response_type')).toBe('code');
    expect(authz.searchParams.has('request_uri')).toBe(false);
    expect(stack.tap.count('/request')).toBe(0);
    const callback = result.hops.find((h) => h.url.startsWith(`${stack.bff.url}/bff/callback`))!;
    expect(new URL(callback.url).searchParams.get('error')).toBe('invalid_request');
    expect(callback.status).toBe(302);
    expect(callback.location).toBe(`${stack.bff.url}/signin-error?error=invalid_request`);
    expect(result.hops.some((h) => h.url.includes('/interaction/'))).toBe(false);
    expect(result.hops.flatMap((h) => h.setCookie).some((c) => /^__Host-bff=[^;]/.test(c))).toBe(false);
    expect(stack.tap.count('/token', 'authorization_code')).toBe(0);
    expect((await getUser(browser, stack)).status).toBe(401);
  });
});

describe('L16: the OP refuses the push (400/401) → login error, no redirect to the OP, no transaction cookie', () => {
  let idp: RunningIdp;
  let wrongSecret: RunningBff;
  let wrongRedirect: RunningBff;
  const logger = captureLogger();
  beforeAll(async () => {
    const port = await getFreePort();
    idp = await startIdp({
      bffBaseUrl: `http://localhost:${port}`,
      requirePushedAuthorizationRequests: true,
    });
    // The IdP's own refusals: a wrong client secret (401 invalid_client) and a BFF whose redirect URI
    // the IdP never registered (400).
    wrongSecret = await startBff({
      port,
      issuer: idp.issuer,
      sessionSecret: SESSION_SECRET,
      clientSecret: 'not-the-bff-secret',
      logger,
      bff: { errorPath: undefined },
    });
    wrongRedirect = await startBff({ issuer: idp.issuer, sessionSecret: SESSION_SECRET, logger });
  });
  afterAll(async () => {
    await wrongSecret?.close();
    await wrongRedirect?.close();
    await idp?.close();
  });

  it('L16: 401 invalid_client → the BFF error page (502) naming only the code; no Location, no cookie', async () => {
    const res = await fetch(`${wrongSecret.url}/bff/login`, { redirect: 'manual' });
    expect(res.status).toBe(502);
    expect(res.headers.get('location')).toBeNull();
    expect(res.headers.getSetCookie()).toEqual([]);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const page = await res.text();
    expect(page).toContain('<code>invalid_client</code>');
    expect(page).not.toContain('not-the-bff-secret');
    expect(
      logger.lines.some(
        (l) =>
          l.includes('refused the pushed authorization request') && l.includes('"error":"invalid_client"'),
      ),
    ).toBe(true);
    assertNoSecrets(logger.lines.join('\n'), ['not-the-bff-secret', SESSION_SECRET]);
  });

  it('L16: 400 from the PAR endpoint → 302 to errorPath?error=<code>, never to the OP; no cookie', async () => {
    const res = await fetch(`${wrongRedirect.url}/bff/login?returnUrl=%2Fx`, { redirect: 'manual' });
    expect(res.status).toBe(302);
    const location = new URL(res.headers.get('location')!, wrongRedirect.url);
    // The sample host's errorPath is '/'.
    expect(location.origin).toBe(wrongRedirect.url);
    expect(location.pathname).toBe('/');
    expect(location.searchParams.get('error')).toMatch(/^invalid_[a-z_]+$/);
    expect(res.headers.getSetCookie()).toEqual([]);
  });

  it('L16: a refused silent login posts isLoggedIn:false to the parent; no cookie', async () => {
    const res = await fetch(`${wrongSecret.url}/bff/silent-login`, { redirect: 'manual' });
    expect(res.status).toBe(200);
    expect(res.headers.get('location')).toBeNull();
    expect(res.headers.getSetCookie()).toEqual([]);
    expect(message(await res.text())).toEqual({ source: 'bff-silent-login', isLoggedIn: false });
  });
});

describe('L16: the PAR endpoint hangs, fails or resets → 503 ERR_BFF_IDP_UNAVAILABLE with Retry-After', () => {
  let front: IdpFront;
  let bff: RunningBff;
  beforeAll(async () => {
    const port = await getFreePort();
    front = await startIdpFront({
      bffBaseUrl: `http://localhost:${port}`,
      requirePushedAuthorizationRequests: true,
    });
    bff = await startBff({
      port,
      issuer: front.issuer,
      sessionSecret: SESSION_SECRET,
      bff: { fetch: front.fetch, httpTimeout: 0.5, errorPath: undefined },
    });
    await bff.app.bff.ready();
  });
  afterAll(async () => {
    await bff?.close();
    await front?.close();
  });

  const expectUnavailable = async (res: Response, retryAfter?: string) => {
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(((await res.json()) as { error: string }).error).toBe('ERR_BFF_IDP_UNAVAILABLE');
    if (retryAfter) expect(res.headers.get('retry-after')).toBe(retryAfter);
    else expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(res.headers.get('location')).toBeNull();
    // Nothing stored: no transaction cookie, no session.
    expect(res.headers.getSetCookie()).toEqual([]);
  };

  it.each([
    ['hangs (past httpTimeout)', { kind: 'hang' } as const, undefined],
    [
      'answers 503 with Retry-After: 7',
      {
        kind: 'answer',
        status: 503,
        body: '<h1>down</h1>',
        contentType: 'text/html',
        headers: { 'retry-after': '7' },
      } as const,
      '7',
    ],
    [
      'answers 500 invalid JSON',
      { kind: 'answer', status: 500, body: '{"error":', contentType: 'application/json' } as const,
      undefined,
    ],
    ['resets the connection', { kind: 'reset' } as const, undefined],
  ])('L16: PAR endpoint %s → 503, no redirect, nothing stored', async (_name, fault, retryAfter) => {
    front.pushFault = fault;
    const pushes = front.pushes;
    const started = Date.now();
    const res = await fetch(`${bff.url}/bff/login`, { redirect: 'manual' });
    await expectUnavailable(res, retryAfter);
    expect(front.pushes - pushes).toBe(1);
    expect(Date.now() - started).toBeLessThan(5000);
    front.pushFault = { kind: 'pass' };
  });

  it('L16: once the PAR endpoint is back, the next sign-in goes through', async () => {
    front.pushFault = { kind: 'pass' };
    const { browser, result } = await signIn({ bff }, 'alice');
    expect([...new URL(result.hops[0]!.location!).searchParams.keys()].sort()).toEqual([
      'client_id',
      'request_uri',
    ]);
    expect(result.url).toBe(`${bff.url}/`);
    expect((await getUser(browser, { bff })).status).toBe(200);
  });
});

describe('L16: pushedAuthorizationRequests against what the OP advertises', () => {
  let idp: RunningIdp;
  /** The port of the one BFF here whose redirect URI the IdP knows (the others never reach the OP). */
  let registeredPort: number;
  const opened: RunningBff[] = [];
  beforeAll(async () => {
    registeredPort = await getFreePort();
    idp = await startIdp({ bffBaseUrl: `http://localhost:${registeredPort}` });
  });
  afterAll(async () => {
    for (const bff of opened) await bff.close();
    await idp?.close();
  });

  /** A BFF whose view of the OP's metadata is changed by `edit`. */
  const bffWith = async (
    mode: 'auto' | 'always' | 'never' | undefined,
    edit: (metadata: Record<string, unknown>) => void = () => {},
    port?: number,
  ) => {
    const logger = captureLogger();
    const calls: string[] = [];
    const bff = await startBff({
      ...(port ? { port } : {}),
      issuer: idp.issuer,
      sessionSecret: SESSION_SECRET,
      logger,
      bff: {
        errorPath: undefined,
        ...(mode ? { pushedAuthorizationRequests: mode } : {}),
        fetch: async (input, init) => {
          const url = new URL(String(input));
          calls.push(url.pathname);
          const res = await fetch(input, init);
          if (url.pathname !== '/.well-known/openid-configuration') return res;
          const metadata = (await res.json()) as Record<string, unknown>;
          edit(metadata);
          return jsonResponse(metadata);
        },
      },
    });
    opened.push(bff);
    return { bff, logger, calls };
  };
  const withoutPar = (m: Record<string, unknown>) => {
    delete m.pushed_authorization_request_endpoint;
  };

  it('L16: "auto" (the default) pushes whenever the OP advertises a PAR endpoint, even when not required', async () => {
    const { bff, calls, logger } = await bffWith(undefined, undefined, registeredPort);
    const res = await fetch(`${bff.url}/bff/login`, { redirect: 'manual' });
    expect(res.status).toBe(302);
    expect([...new URL(res.headers.get('location')!).searchParams.keys()].sort()).toEqual([
      'client_id',
      'request_uri',
    ]);
    expect(calls).toContain('/request');
    expect(logger.lines.some((l) => l.includes('"pushed":true') && l.includes('"mode":"auto"'))).toBe(true);
  });

  it('L16: "auto" with an OP without a PAR endpoint → the front channel, as before', async () => {
    const { bff, calls } = await bffWith('auto', withoutPar);
    const res = await fetch(`${bff.url}/bff/login`, { redirect: 'manual' });
    expect(res.status).toBe(302);
    const authz = new URL(res.headers.get('location')!);
    expect(authz.searchParams.get('response_type')).toBe('code');
    expect(authz.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authz.searchParams.has('request_uri')).toBe(false);
    expect(calls).not.toContain('/request');
  });

  it.each([
    [
      '"always" and no PAR endpoint',
      'always',
      withoutPar,
      /"always" but the OP metadata has no pushed_authorization_request_endpoint.*set pushedAuthorizationRequests to "auto" or "never"/,
    ],
    [
      '"never" and require_pushed_authorization_requests',
      'never',
      (m: Record<string, unknown>) => {
        m.require_pushed_authorization_requests = true;
      },
      /requires pushed authorization requests.*set pushedAuthorizationRequests to "auto" or "always"/,
    ],
    [
      '"auto", required but no PAR endpoint',
      'auto',
      (m: Record<string, unknown>) => {
        withoutPar(m);
        m.require_pushed_authorization_requests = true;
      },
      /requires pushed authorization requests but has no pushed_authorization_request_endpoint/,
    ],
  ] as const)(
    'L16: %s → 500 ERR_BFF_CONFIGURATION problem+json, no redirect, no cookie; the log says the fix',
    async (_name, mode, edit, fix) => {
      const { bff, logger, calls } = await bffWith(mode, edit);
      for (const path of ['/bff/login', '/bff/silent-login']) {
        const res = await fetch(`${bff.url}${path}`, { redirect: 'manual' });
        expect(res.status).toBe(500);
        expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        expect(((await res.json()) as { error: string }).error).toBe('ERR_BFF_CONFIGURATION');
        expect(res.headers.get('location')).toBeNull();
        expect(res.headers.getSetCookie().some((c) => TX_COOKIE.test(c))).toBe(false);
      }
      expect(calls).not.toContain('/request');
      expect(logger.lines.some((l) => fix.test(l.replaceAll('\\"', '"')))).toBe(true);
    },
  );

  it('L16: an unknown pushedAuthorizationRequests value throws a TypeError naming the choices', () => {
    const options = {
      issuer: idp.issuer,
      clientId: 'bff',
      clientSecret: 'bff-secret',
      baseUrl: 'http://localhost:3999',
      sessionSecret: SESSION_SECRET,
    };
    for (const bad of ['yes', true, 'ALWAYS']) {
      expect(() => createBff({ ...options, pushedAuthorizationRequests: bad as unknown as 'auto' })).toThrow(
        /`pushedAuthorizationRequests` must be "auto" .*"always" or "never"/,
      );
    }
    expect(() => createBff({ ...options, pushedAuthorizationRequests: 'never' })).not.toThrow();
  });
});
