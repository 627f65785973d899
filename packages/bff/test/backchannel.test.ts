// Back-channel logout (SECURITY B1–B5) in the real createBff, with logout tokens from the real sample
// IdP: genuine ones (IdP-side logout), and forged ones signed with the IdP's genuine key (idp.sign).
import { randomUUID } from 'node:crypto';
import { getFreePort, type RunningIdp, startIdp, type TestBrowser } from '@gatehouse/testing';
import { base64url, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKCHANNEL_LOGOUT_EVENT } from '../src/lib/backchannel/validate.js';
import { type BffHost, signIn, spaFetch, startBffHost } from './support-proxy/bff-host.js';

let idp: RunningIdp;
let host: BffHost;
let strictHost: BffHost;
let baseUrl: string;
const logLines: string[] = [];
const recordingLogger = Object.fromEntries(
  (['debug', 'info', 'warn', 'error'] as const).map((level) => [
    level,
    (obj: object, msg?: string) => logLines.push(`${level} ${msg ?? ''} ${JSON.stringify(obj)}`),
  ]),
) as unknown as NonNullable<Parameters<typeof startBffHost>[0]['logger']>;

beforeAll(async () => {
  const port = await getFreePort();
  baseUrl = `http://127.0.0.1:${port}`;
  idp = await startIdp({ bffBaseUrl: baseUrl });
  host = await startBffHost({ issuer: idp.issuer, baseUrl }, port);
  strictHost = await startBffHost({
    issuer: idp.issuer,
    baseUrl,
    backchannel: { requireLogoutTyp: true },
    logger: recordingLogger,
  });
});

afterAll(async () => {
  await strictHost?.close();
  await host?.close();
  await idp?.close();
});

/** The session's claims as /bff/user shows them, or the status when there is no session. */
async function userClaims(browser: TestBrowser): Promise<Record<string, unknown> | number> {
  const res = await spaFetch(browser, baseUrl, '/bff/user');
  if (res.status !== 200) return res.status;
  const list = (await res.json()) as { type: string; value: unknown }[];
  return Object.fromEntries(list.map((c) => [c.type, c.value]));
}

async function sidOf(browser: TestBrowser): Promise<string> {
  const claims = await userClaims(browser);
  if (typeof claims === 'number' || typeof claims.sid !== 'string')
    throw new Error('session has no sid claim');
  return claims.sid;
}

function postLogout(
  token: string | undefined,
  url = baseUrl,
  init: { contentType?: string; body?: string } = {},
) {
  return fetch(`${url}/bff/backchannel`, {
    method: 'POST',
    headers: { 'content-type': init.contentType ?? 'application/x-www-form-urlencoded' },
    body: init.body ?? (token === undefined ? '' : new URLSearchParams({ logout_token: token }).toString()),
  });
}

/** Valid logout-token claims for `sid`/`sub`, with `over` applied (undefined deletes a claim). */
function claims(over: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  const payload: Record<string, unknown> = {
    iss: idp.issuer,
    aud: 'bff',
    iat: now,
    exp: now + 120,
    jti: randomUUID(),
    events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
    sid: 'no-such-sid',
    ...over,
  };
  for (const key of Object.keys(payload)) if (payload[key] === undefined) delete payload[key];
  return payload;
}

const unsigned = (payload: object) =>
  `${base64url.encode(JSON.stringify({ alg: 'none' }))}.${base64url.encode(JSON.stringify(payload))}.`;

describe('B1 request shape', () => {
  it('B1: GET → 405 with Allow: POST and no-store', async () => {
    const res = await fetch(`${baseUrl}/bff/backchannel`);
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
    expect(res.headers.get('cache-control')).toBe('no-store');
  });

  it('B1: missing logout_token, a JSON body or two logout_token values → 400 invalid_request', async () => {
    const token = await idp.sign(claims());
    const cases = [
      postLogout(undefined),
      postLogout(undefined, baseUrl, { body: 'other=1' }),
      postLogout(undefined, baseUrl, {
        contentType: 'application/json',
        body: JSON.stringify({ logout_token: token }),
      }),
      postLogout(undefined, baseUrl, { body: `logout_token=${token}&logout_token=${token}` }),
    ];
    for (const res of await Promise.all(cases)) {
      expect(res.status).toBe(400);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(await res.json()).toEqual({ error: 'invalid_request' });
    }
  });

  it('B1: no cookie, CSRF header or Origin is needed on this route (a valid token from nowhere → 200)', async () => {
    const res = await postLogout(await idp.sign(claims()));
    expect(res.status).toBe(200);
  });
});

describe('B2/B3 forged or invalid logout tokens → 400, no session touched', () => {
  let alice: TestBrowser;
  let sid: string;

  beforeAll(async () => {
    alice = await signIn(baseUrl);
    sid = await sidOf(alice);
  });

  const forged: Array<[string, () => Promise<string>]> = [
    ['B2 alg none', async () => unsigned(claims({ sid }))],
    [
      'B2 wrong alg (ES256 with the IdP kid)',
      async () => {
        const { privateKey } = await generateKeyPair('ES256');
        const kid = idp.publicJwks().keys[0]?.kid;
        return new SignJWT(claims({ sid })).setProtectedHeader({ alg: 'ES256', kid }).sign(privateKey);
      },
    ],
    [
      'B2 wrong alg (HS256 keyed with the public key)',
      async () =>
        new SignJWT(claims({ sid }))
          .setProtectedHeader({ alg: 'HS256' })
          .sign(new TextEncoder().encode(JSON.stringify(idp.publicJwks().keys[0]))),
    ],
    ['B2 bad signature', async () => `${(await idp.sign(claims({ sid }))).slice(0, -4)}AAAA`],
    ['B2 unknown kid', async () => idp.sign(claims({ sid }), { kid: 'not-a-key' })],
    ['B2 wrong aud', async () => idp.sign(claims({ sid, aud: 'other-client' }))],
    ['B2 wrong iss', async () => idp.sign(claims({ sid, iss: 'https://evil.example' }))],
    ['B2 no events', async () => idp.sign(claims({ sid, events: undefined }))],
    [
      'B2 wrong event',
      async () => idp.sign(claims({ sid, events: { 'http://schemas.openid.net/event/other': {} } })),
    ],
    [
      'B2 event member not an object',
      async () => idp.sign(claims({ sid, events: { [BACKCHANNEL_LOGOUT_EVENT]: 'x' } })),
    ],
    ['B2 nonce present', async () => idp.sign(claims({ sid, nonce: 'n-0S6_WzA2Mj' }))],
    [
      'B2 expired',
      async () => {
        const now = Math.floor(Date.now() / 1000);
        return idp.sign(claims({ sid, iat: now - 400, exp: now - 200 }));
      },
    ],
    ['B2 no exp', async () => idp.sign(claims({ sid, exp: undefined }))],
    ['B2 no iat', async () => idp.sign(claims({ sid, iat: undefined }))],
    ['B2 no jti', async () => idp.sign(claims({ sid, jti: undefined }))],
    ['B2 neither sub nor sid', async () => idp.sign(claims({ sid: undefined }))],
    [
      'B2 valid far too long (exp − iat > maxTokenLifetime)',
      async () => idp.sign(claims({ sid, exp: Math.floor(Date.now() / 1000) + 7200 })),
    ],
    [
      'B2 a genuine-looking ID token posted as a logout token',
      async () => {
        const now = Math.floor(Date.now() / 1000);
        return idp.sign({
          iss: idp.issuer,
          aud: 'bff',
          sub: 'alice',
          sid,
          iat: now,
          exp: now + 300,
          nonce: 'n',
          auth_time: now,
        });
      },
    ],
    ['B3 typ at+jwt', async () => idp.sign(claims({ sid }), { typ: 'at+jwt' })],
    ['B3 typ JWT', async () => idp.sign(claims({ sid }), { typ: 'JWT' })],
  ];

  for (const [name, make] of forged) {
    it(`${name} → 400 invalid_request, the session survives`, async () => {
      const res = await postLogout(await make());
      expect(res.status).toBe(400);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(await res.json()).toEqual({ error: 'invalid_request' });
      expect(await userClaims(alice)).toMatchObject({ sub: 'alice', sid });
    });
  }

  it('B2 replayed jti → 400 the second time (also for a token that matched no session)', async () => {
    const token = await idp.sign(claims({ sid: 'unknown-sid' }));
    expect((await postLogout(token)).status).toBe(200);
    const replay = await postLogout(token);
    expect(replay.status).toBe(400);
    expect(await userClaims(alice)).toMatchObject({ sid });
  });

  it('B3 strict mode: no typ → 400; typ logout+jwt → 200 (default mode accepts both)', async () => {
    expect((await postLogout(await idp.sign(claims()), strictHost.url)).status).toBe(400);
    expect((await postLogout(await idp.sign(claims(), { typ: 'logout+jwt' }), strictHost.url)).status).toBe(
      200,
    );
    expect((await postLogout(await idp.sign(claims(), { typ: 'logout+jwt' }))).status).toBe(200);
    expect((await postLogout(await idp.sign(claims(), { typ: 'application/logout+jwt' }))).status).toBe(200);
  });
});

describe('logging', () => {
  it('B2/S3: refusals and logouts are logged with a reason, never with the token or its claims', async () => {
    logLines.length = 0;
    const jti = randomUUID();
    const refused = await idp.sign(claims({ jti, sid: 'sid-for-log-test', nonce: 'n' }), {
      typ: 'logout+jwt',
    });
    const accepted = await idp.sign(claims({ jti: randomUUID(), sub: 'sub-for-log-test', sid: undefined }), {
      typ: 'logout+jwt',
    });
    expect((await postLogout(refused, strictHost.url)).status).toBe(400);
    expect((await postLogout(accepted, strictHost.url)).status).toBe(200);
    const text = logLines.join('\n');
    expect(text).toContain('"reason":"nonce"');
    expect(text).toContain('back-channel logout');
    for (const secret of [
      refused,
      accepted,
      refused.split('.')[1] ?? '',
      jti,
      'sid-for-log-test',
      'sub-for-log-test',
    ]) {
      expect(text).not.toContain(secret);
    }
  });
});

describe('B4/B5 ending sessions', () => {
  it('B4 token with sid → only that session ends (200, no-store); B5 the same user again → still 200', async () => {
    const first = await signIn(baseUrl);
    const second = await signIn(baseUrl); // another browser: another IdP session, another sid
    const sid = await sidOf(first);
    expect(await sidOf(second)).not.toBe(sid);
    const res = await postLogout(await idp.sign(claims({ sid, sub: 'alice' })));
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await userClaims(first)).toBe(401);
    expect(await userClaims(second)).toMatchObject({ sub: 'alice' });
    // B5: the OP may send it again after the session is gone (new jti) → 200.
    expect((await postLogout(await idp.sign(claims({ sid, sub: 'alice' })))).status).toBe(200);
  });

  it('B4 token with sub only → every session of that user ends, other users keep theirs', async () => {
    const a1 = await signIn(baseUrl);
    const a2 = await signIn(baseUrl);
    const bob = await signIn(baseUrl, 'bob');
    const res = await postLogout(await idp.sign(claims({ sid: undefined, sub: 'alice' })));
    expect(res.status).toBe(200);
    expect(await userClaims(a1)).toBe(401);
    expect(await userClaims(a2)).toBe(401);
    expect(await userClaims(bob)).toMatchObject({ sub: 'bob' });
  });

  it('B4 the real IdP ends the user’s sessions (admin logout) → a genuine logout token ends the BFF session', async () => {
    const browser = await signIn(baseUrl, 'bob');
    expect(await userClaims(browser)).toMatchObject({ sub: 'bob' });
    const result = await idp.endSessions('bob');
    expect(result.failed).toEqual([]);
    expect(result.notified).toContain('bff');
    expect(await userClaims(browser)).toBe(401);
  });

  it('B4 logout at the IdP from another tab (end_session without the BFF) → the BFF session is gone', async () => {
    const browser = await signIn(baseUrl);
    expect(await userClaims(browser)).toMatchObject({ sub: 'alice' });
    const endSession = new URL(
      (
        (await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json()) as {
          end_session_endpoint: string;
        }
      ).end_session_endpoint,
    );
    endSession.searchParams.set('client_id', 'bff');
    const done = await browser.follow(endSession);
    expect(done.status).toBeLessThan(500);
    // Delivery is synchronous with the IdP's logout handling; allow a moment anyway.
    for (let i = 0; i < 20 && (await userClaims(browser)) !== 401; i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(await userClaims(browser)).toBe(401);
  });
});
