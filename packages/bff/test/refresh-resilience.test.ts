// Refresh against a failing token endpoint (issue 10, SECURITY R5, R5a, R7): the real sample IdP behind
// a fault-injecting HTTP front (support-res/idp-front.ts), the real sample API behind the BFF's proxy,
// the sample BFF host with a movable clock. A fault that is not the user's never signs anyone out: every
// transient failure with an expired token answers 503 problem+json ERR_BFF_IDP_UNAVAILABLE with a
// Retry-After and keeps the session; a still-valid token keeps being used while one background refresh
// runs; failed refreshes back off per session and an IdP that keeps failing is short-circuited.
import {
  getFreePort,
  type RunningApi,
  type RunningBff,
  startApi,
  startBff,
  TestBrowser,
} from '@gatehouse/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { assertNoSecrets, captureLogger, createClock, SESSION_SECRET } from './support-core/stack.js';
import {
  type IdpFront,
  type NetworkFault,
  type RefreshFault,
  startIdpFront,
} from './support-res/idp-front.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Env {
  front: IdpFront;
  api: RunningApi;
  bff: RunningBff;
  clock: ReturnType<typeof createClock>;
  logger: ReturnType<typeof captureLogger>;
  close(): Promise<void>;
}

/** IdP behind the front, sample API, sample BFF host with `httpTimeout` 0.5 s (waits ≤ 0.5 s, refresh request ≤ 1.5 s). */
async function startEnv(idpOptions: Parameters<typeof startIdpFront>[0] = {}): Promise<Env> {
  const port = await getFreePort();
  const front = await startIdpFront({ bffBaseUrl: `http://localhost:${port}`, ...idpOptions });
  const api = await startApi({ issuer: front.issuer });
  const clock = createClock();
  const logger = captureLogger();
  const bff = await startBff({
    port,
    issuer: front.issuer,
    sessionSecret: SESSION_SECRET,
    apiUrl: api.url,
    logger,
    bff: { fetch: front.fetch, clock: clock.now, httpTimeout: 0.5, errorPath: undefined },
  });
  return {
    front,
    api,
    bff,
    clock,
    logger,
    async close() {
      await bff.close();
      await api.close();
      await front.close();
    },
  };
}

async function signInCookie(env: Env, user = 'alice'): Promise<string> {
  const browser = new TestBrowser();
  await browser.login(`${env.bff.url}/bff/login`, { username: user, password: user });
  const cookie = await browser.cookie(`${env.bff.url}/`, '__Host-bff');
  if (!cookie) throw new Error('sign-in did not set the session cookie');
  return cookie;
}

interface Answer {
  status: number;
  type: string;
  retryAfter: string | null;
  body: string;
  ms: number;
}

/** An SPA call with the session cookie: the proxied sample API (default) or the local API. */
async function call(env: Env, cookie: string, path = '/api/todos'): Promise<Answer> {
  const started = performance.now();
  const res = await fetch(`${env.bff.url}${path}`, {
    headers: { cookie: `__Host-bff=${cookie}`, 'x-csrf': '1', 'sec-fetch-site': 'same-origin' },
  });
  const body = await res.text();
  return {
    status: res.status,
    type: res.headers.get('content-type') ?? '',
    retryAfter: res.headers.get('retry-after'),
    body,
    ms: performance.now() - started,
  };
}

const userStatus = async (env: Env, cookie: string) =>
  (
    await fetch(`${env.bff.url}/bff/user`, {
      headers: { cookie: `__Host-bff=${cookie}`, 'x-csrf': '1', 'sec-fetch-site': 'same-origin' },
    })
  ).status;

/** The outcome the issue fixes for every transient failure with an expired token. */
function expectIdpUnavailable(answer: Answer) {
  expect(answer.status, answer.body).toBe(503);
  expect(answer.type).toMatch(/^application\/problem\+json/);
  expect(JSON.parse(answer.body)).toMatchObject({ status: 503, error: 'ERR_BFF_IDP_UNAVAILABLE' });
  expect(answer.retryAfter).toMatch(/^[1-9]\d*$/);
}

/** Calls until one answers 200 (the back-off may still hold for a moment after a fault ends). */
async function until200(env: Env, cookie: string, path = '/api/todos', ms = 6000): Promise<Answer> {
  const deadline = Date.now() + ms;
  let last = await call(env, cookie, path);
  // 401 is an answer too (a spent refresh token after a processed-but-lost grant): stop there.
  while (last.status !== 200 && last.status !== 401 && Date.now() < deadline) {
    await sleep(100);
    env.clock.advance(1);
    last = await call(env, cookie, path);
  }
  return last;
}

describe('R5 R5a: transient token-endpoint failures keep the session (IdP behind a fault front)', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv();
  });
  afterEach(async () => {
    env.front.fault = { kind: 'pass' };
    env.front.network = undefined;
    // Past every back-off and an open circuit, so one test's outage does not leak into the next.
    env.clock.advance(120);
  });
  afterAll(async () => {
    assertNoSecrets(env.logger.lines.join('\n'), [SESSION_SECRET, 'bff-secret']);
    await env?.close();
  });

  it('R5a: token endpoint hangs past httpTimeout → 503 ERR_BFF_IDP_UNAVAILABLE with Retry-After within ~httpTimeout; the session stays; once the IdP answers, the same cookie works', async () => {
    const cookie = await signInCookie(env);
    expect((await call(env, cookie)).status).toBe(200);
    env.clock.advance(400); // the 300 s access token has expired
    env.front.fault = { kind: 'hang' };
    const answer = await call(env, cookie);
    expectIdpUnavailable(answer);
    expect(answer.ms).toBeLessThan(1500); // bounded by httpTimeout (0.5 s), not by the hung request
    expect(await userStatus(env, cookie)).toBe(200);
    expectIdpUnavailable(await call(env, cookie, '/local/whoami'));
    env.front.fault = { kind: 'pass' };
    await sleep(1600); // the hung refresh request gives up (3 × httpTimeout)
    expect((await until200(env, cookie)).status).toBe(200);
    expect(await userStatus(env, cookie)).toBe(200);
  });

  const html = (status: number, headers?: Record<string, string>) => ({
    kind: 'answer' as const,
    status,
    body: `<html><body><h1>${status}</h1>upstream trouble</body></html>`,
    contentType: 'text/html',
    ...(headers ? { headers } : {}),
  });
  const json = (status: number, body: unknown, headers?: Record<string, string>) => ({
    kind: 'answer' as const,
    status,
    body: JSON.stringify(body),
    contentType: 'application/json',
    ...(headers ? { headers } : {}),
  });

  it.each([
    { name: 'connection reset', fault: { kind: 'reset' } as RefreshFault },
    { name: 'connection refused', network: 'refused' as NetworkFault },
    { name: 'DNS failure', network: 'dns' as NetworkFault },
    {
      name: '500 JSON server_error',
      fault: json(500, { error: 'server_error' }) as RefreshFault,
    },
    { name: '502 HTML page', fault: html(502) as RefreshFault },
    { name: '503 HTML page', fault: html(503) as RefreshFault },
    { name: '504 empty body', fault: { ...html(504), body: '' } as RefreshFault },
    { name: '429 JSON', fault: json(429, { error: 'slow_down' }) as RefreshFault },
    { name: '429 HTML', fault: html(429) as RefreshFault },
    {
      name: '400 temporarily_unavailable',
      fault: json(400, { error: 'temporarily_unavailable' }) as RefreshFault,
    },
    { name: '404 HTML from a misrouted proxy', fault: html(404) as RefreshFault },
    { name: '200 HTML captive page', fault: html(200) as RefreshFault },
    { name: '200 JSON cut off mid-body', fault: { kind: 'truncate' } as RefreshFault },
  ])(
    'R5a R5: $name with an expired token → 503 + Retry-After, ≤ 3 attempts, session kept, recovers',
    async ({ fault, network }: { fault?: RefreshFault; network?: NetworkFault }) => {
      const cookie = await signInCookie(env);
      env.clock.advance(400);
      const before = env.front.refreshes.length + env.front.networkAttempts;
      if (fault) env.front.fault = fault;
      env.front.network = network;
      expectIdpUnavailable(await call(env, cookie));
      const attempts = env.front.refreshes.length + env.front.networkAttempts - before;
      expect(attempts).toBeGreaterThanOrEqual(1);
      expect(attempts).toBeLessThanOrEqual(3);
      expect(await userStatus(env, cookie)).toBe(200);
      env.front.fault = { kind: 'pass' };
      env.front.network = undefined;
      env.clock.advance(60);
      const healed = await until200(env, cookie);
      // Only the cut-off 200 reached the OP, which processed the grant and rotated the refresh token; its
      // answer never arrived whole, so the session's refresh token is spent and the next refresh ends it
      // (invalid_grant, R4). Every other fault was answered before the OP saw the grant: the session lives.
      expect(healed.status).toBe(fault?.kind === 'truncate' ? 401 : 200);
    },
  );

  it('R5a: Retry-After of a 503 from the IdP is passed on (at least that long) and no refresh is tried before it', async () => {
    const cookie = await signInCookie(env);
    env.clock.advance(400);
    env.front.fault = html(503, { 'retry-after': '7' });
    const answer = await call(env, cookie);
    expectIdpUnavailable(answer);
    expect(Number(answer.retryAfter)).toBeGreaterThanOrEqual(7);
    const attempts = env.front.refreshes.length;
    env.clock.advance(5);
    expectIdpUnavailable(await call(env, cookie));
    expect(env.front.refreshes.length).toBe(attempts);
  });

  it.each([
    { name: '400 invalid_client', fault: json(400, { error: 'invalid_client' }) },
    {
      name: '401 invalid_client with a challenge',
      fault: json(401, { error: 'invalid_client' }, { 'www-authenticate': 'Basic realm="idp"' }),
    },
    { name: '400 invalid_scope', fault: json(400, { error: 'invalid_scope' }) },
    { name: '200 JSON without access_token', fault: json(200, { token_type: 'Bearer', expires_in: 60 }) },
  ])(
    'R5a: $name (the OP answering, but not invalid_grant) → 502 ERR_BFF_IDP_RESPONSE, one attempt, session kept',
    async ({ fault }) => {
      const cookie = await signInCookie(env);
      env.clock.advance(400);
      const before = env.front.refreshes.length;
      env.front.fault = fault;
      const answer = await call(env, cookie);
      expect(answer.status, answer.body).toBe(502);
      expect(JSON.parse(answer.body)).toMatchObject({ error: 'ERR_BFF_IDP_RESPONSE' });
      expect(env.front.refreshes.length - before).toBe(1);
      expect(await userStatus(env, cookie)).toBe(200);
      env.front.fault = { kind: 'pass' };
      env.clock.advance(60);
      expect((await until200(env, cookie)).status).toBe(200);
    },
  );

  it('R5 R8: a timeout is never retried with the same refresh token: the slow request is kept, its rotated token stored, exactly one refresh request', async () => {
    const cookie = await signInCookie(env);
    env.clock.advance(400);
    const before = env.front.refreshes.length;
    const refreshedBefore = env.front.idp.counters.token('refresh_token');
    // The OP is frozen for 1 s and then processes what it got (slower than httpTimeout, faster than the
    // refresh request's own 3 × httpTimeout): the waiting call gets 503, the refresh itself completes.
    env.front.fault = { kind: 'delay', ms: 1000 };
    expectIdpUnavailable(await call(env, cookie));
    await sleep(1300);
    env.front.fault = { kind: 'pass' };
    const after = await call(env, cookie);
    expect(after.status, after.body).toBe(200);
    expect(env.front.refreshes.length - before).toBe(1);
    expect(env.front.idp.counters.token('refresh_token') - refreshedBefore).toBe(1);
    // The rotated refresh token was stored: the next refresh works (a reused one would revoke the grant).
    env.clock.advance(400);
    expect((await call(env, cookie)).status).toBe(200);
    expect(await userStatus(env, cookie)).toBe(200);
  });
});

describe('R7: refresh ahead without blocking, back-off, circuit breaker', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv();
  });
  afterEach(() => {
    env.front.fault = { kind: 'pass' };
    env.clock.advance(120);
  });
  afterAll(async () => {
    await env?.close();
  });

  it('R7: IdP hangs while the token is inside the refresh margin → every call still gets 200 at once; one background refresh', async () => {
    const cookie = await signInCookie(env);
    env.clock.advance(250); // 50 s left of 300: inside the 60 s margin, still valid
    const before = env.front.refreshes.length;
    env.front.fault = { kind: 'hang' };
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => call(env, cookie, i % 2 ? '/api/todos' : '/local/whoami')),
    );
    // All 200 while the IdP hangs: a call that waited for the refresh could only have got 503.
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200));
    await vi.waitFor(() => expect(env.front.refreshes.length - before).toBe(1));
    // Still hung: more calls go on with the current token and start no second refresh.
    for (let i = 0; i < 5; i++) expect((await call(env, cookie)).status).toBe(200);
    expect(env.front.refreshes.length - before).toBe(1);
    // The IdP comes back: after the failed background refresh's back-off, one refresh replaces the token.
    env.front.fault = { kind: 'pass' };
    await sleep(1600);
    env.clock.advance(15);
    expect((await call(env, cookie)).status).toBe(200);
    await vi.waitFor(() => expect(env.front.refreshes.length - before).toBe(2));
    await sleep(200); // let the background refresh store its tokens
    expect((await call(env, cookie)).status).toBe(200);
    expect(env.front.refreshes.length - before).toBe(2); // the new token is fresh: no more refreshes
  });

  it('R7: a 60 s outage costs at most one refresh (≤ 3 attempts) per back-off step; the steps grow and are capped; then the same cookie works', async () => {
    const cookie = await signInCookie(env);
    env.clock.advance(400);
    env.front.fault = {
      kind: 'answer',
      status: 503,
      body: '{"error":"temporarily_unavailable"}',
      contentType: 'application/json',
    };
    const steps: { t: number; requests: number }[] = [];
    let calls = 0;
    for (let t = 0; t < 60; t += 0.25) {
      const before = env.front.refreshes.length;
      const answer = await call(env, cookie);
      calls++;
      expectIdpUnavailable(answer);
      const sent = env.front.refreshes.length - before;
      if (sent > 0) steps.push({ t, requests: sent });
      env.clock.advance(0.25);
    }
    expect(calls).toBe(240);
    for (const step of steps) expect(step.requests).toBeLessThanOrEqual(3);
    // Without back-off that would be 240 refreshes; with steps of 1, 2, 4, 8 then ≤ 10 s it is about ten.
    expect(steps.length).toBeGreaterThanOrEqual(5);
    expect(steps.length).toBeLessThanOrEqual(14);
    const gaps = steps.slice(1).map((s, i) => s.t - (steps[i]?.t ?? 0));
    for (const gap of gaps) expect(gap).toBeLessThanOrEqual(10.5); // capped
    expect(Math.max(...gaps)).toBeGreaterThanOrEqual(4); // and growing
    expect(await userStatus(env, cookie)).toBe(200);
    env.front.fault = { kind: 'pass' };
    env.clock.advance(11);
    expect((await call(env, cookie)).status).toBe(200);
  });
});

describe('R7: an IdP that keeps failing is short-circuited (one probe at a time)', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv();
  });
  afterAll(async () => {
    await env?.close();
  });

  it('R7: while the circuit is open other sessions do not reach the IdP (503 + Retry-After); then one probe, and recovery for all', async () => {
    const cookies: string[] = [];
    for (let i = 0; i < 6; i++) cookies.push(await signInCookie(env, i % 2 ? 'bob' : 'alice'));
    env.clock.advance(400);
    env.front.fault = { kind: 'answer', status: 503, body: 'down', contentType: 'text/plain' };
    expectIdpUnavailable(await call(env, cookies[0]!));
    expectIdpUnavailable(await call(env, cookies[1]!));
    const afterTrip = env.front.refreshes.length;
    expect(afterTrip).toBeLessThanOrEqual(6);
    // Open: the other four sessions are answered at once without an IdP request.
    for (const cookie of cookies.slice(2)) {
      const answer = await call(env, cookie);
      expectIdpUnavailable(answer);
      expect(answer.ms).toBeLessThan(1000); // no wait for a refresh (the count below: no IdP request)
    }
    expect(env.front.refreshes.length).toBe(afterTrip);
    // Half-open: four sessions at once → exactly one probe reaches the (still failing) IdP.
    env.clock.advance(31);
    const probing = await Promise.all(cookies.slice(2).map((c) => call(env, c)));
    for (const answer of probing) expectIdpUnavailable(answer);
    expect(env.front.refreshes.length - afterTrip).toBe(1);
    // The IdP is back: the next probe succeeds and the rest follow; every session works again.
    env.front.fault = { kind: 'pass' };
    env.clock.advance(31);
    const healed = await Promise.all(cookies.map((c) => call(env, c)));
    expect(healed.map((a) => a.status)).toEqual(Array(6).fill(200));
  });
});

describe('R7: once the IdP answers again, every session recovers at once', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv();
  });
  afterAll(async () => {
    await env?.close();
  });

  it('R7 R5a: the first successful refresh after an outage lifts the back-off of every other session (no wait of up to 10 s per session)', async () => {
    const cookies: string[] = [];
    for (let i = 0; i < 3; i++) cookies.push(await signInCookie(env, i % 2 ? 'bob' : 'alice'));
    env.clock.advance(400);
    env.front.fault = { kind: 'answer', status: 503, body: 'down', contentType: 'text/plain' };
    // A long outage: every session fails several times, so their back-offs grow to several seconds.
    for (let t = 0; t < 30; t += 0.5) {
      for (const cookie of cookies) expectIdpUnavailable(await call(env, cookie));
      env.clock.advance(0.5);
    }
    env.front.fault = { kind: 'pass' };
    // Step the clock until the first session may try again and succeeds...
    let first = -1;
    for (let step = 0; step < 40 && first === -1; step++) {
      env.clock.advance(0.25);
      for (const [i, cookie] of cookies.entries()) {
        if ((await call(env, cookie)).status === 200) {
          first = i;
          break;
        }
      }
    }
    expect(first).not.toBe(-1);
    // ...then the others work at once, without the clock moving: their back-off was lifted.
    const others = cookies.filter((_, i) => i !== first);
    const statuses = [];
    for (const cookie of others) statuses.push((await call(env, cookie)).status);
    expect(statuses).toEqual([200, 200]);
  });
});

describe('R5a R7 (the outside review): short tokens, a frozen IdP under steady load', () => {
  let env: Env;
  beforeAll(async () => {
    // 4-second access tokens as in the review; real time (the clock is not moved here).
    env = await startEnv({ accessTokenTtl: 4 });
  });
  afterAll(async () => {
    await env?.close();
  });

  it('R5a R7: the IdP frozen for 1.2 s (longer than httpTimeout) while tokens come up for refresh signs nobody out', async () => {
    const cookies = [await signInCookie(env, 'alice'), await signInCookie(env, 'bob')];
    const statuses: number[] = [];
    const load = async (ms: number) => {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        const answers = await Promise.all(cookies.map((c) => call(env, c)));
        statuses.push(...answers.map((a) => a.status));
        await sleep(40);
      }
    };
    await load(2500); // tokens are now inside their margin (half of 4 s)
    // Frozen: requests reaching the OP are held and processed when it thaws, as after SIGSTOP/SIGCONT.
    env.front.fault = { kind: 'freeze', until: Date.now() + 1200 };
    await load(1200);
    env.front.fault = { kind: 'pass' };
    await load(3000);
    expect(statuses.filter((s) => s === 401)).toEqual([]);
    expect(statuses.every((s) => s === 200 || s === 503)).toBe(true);
    for (const cookie of cookies) expect(await userStatus(env, cookie)).toBe(200);
    for (const cookie of cookies) expect((await call(env, cookie)).status).toBe(200);
  });
});
