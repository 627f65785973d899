// Fault injection against the real sample suite, one process per part: the IdP frozen (SIGSTOP) or
// killed (SIGKILL) and restarted, Redis killed and restarted, the API killed and restarted, while 50
// requests a second of `GET /api/todos` run across signed-in users. Each scenario prints a table of
// statuses per second and must show: no 401, no 500, no lost session (SECURITY.md R5a, R7, S-rows of
// DESIGN.md's "Failure is designed, not discovered"). Run: npx vitest run --project faults
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { signIn, type VirtualUser } from './support/load.js';
import { requireRedisServer, stopAllChildren } from './support/processes.js';
import {
  Findings,
  IDP_UNAVAILABLE,
  lostSessions,
  recoveredWithin,
  runScenario,
  STORE_UNAVAILABLE,
  sleep,
  UPSTREAM_UNAVAILABLE,
} from './support/scenario.js';
import { type FaultStack, recentWarnings, reviveStack, startFaultStack } from './support/stack.js';

const ready = requireRedisServer('fault injection (real IdP, Redis, API, BFF and worker processes)');

/** How long the IdP stays frozen (the outside review's figure). */
const FREEZE_MS = 12_000;
/** The worker's freeze: long enough for its cached token to expire inside it. */
const WORKER_FREEZE_MS = 6_000;
/** Short access tokens: refreshes happen all the time. */
const SHORT_TTL = 4;
/** Long enough that a token entering the refresh margin outlives a 12 s freeze (margin = TTL / 2). */
const LONG_TTL = 30;
/** Signed-in browsers sharing the load (alice and bob, several sessions each). */
const USERS = 8;

/** Fresh sessions, signed in together (their tokens are issued within a moment of each other). */
function signInUsers(stack: FaultStack, count = USERS): Promise<VirtualUser[]> {
  const origins = stack.bffs.map((b) => b.url);
  return Promise.all(
    Array.from({ length: count }, (_, i) => signIn(`u${i}`, i % 2 === 0 ? 'alice' : 'bob', origins)),
  );
}

/** Restarts the IdP (gracefully) when it issues tokens of another lifetime than `ttl`. */
async function useAccessTokenTtl(stack: FaultStack, ttl: number): Promise<void> {
  if (stack.idp.env.ACCESS_TOKEN_TTL !== String(ttl)) {
    await stack.idp.restart({ ACCESS_TOKEN_TTL: String(ttl) });
  }
}

describe.skipIf(!ready).sequential('fault injection: the sample suite as real processes', () => {
  let stack: FaultStack;

  beforeAll(async () => {
    stack = await startFaultStack({ accessTokenTtl: LONG_TTL });
  });

  /** Fails with the problems, after printing what the apps warned about (the why, for a reader of CI logs). */
  function expectNoProblems(problems: readonly string[]): void {
    if (problems.length > 0) {
      console.log(
        `what the apps logged (warnings and errors, latest last):\n${recentWarnings([stack.idp, stack.api, ...stack.bffs, stack.worker])}`,
      );
    }
    expect(problems).toEqual([]);
  }

  // Each scenario starts from a working suite, whatever the previous one left behind.
  beforeEach(async () => {
    const revived = await reviveStack(stack);
    if (revived.length > 0) console.log(`restarted after the previous scenario: ${revived.join(', ')}`);
  });

  afterAll(async () => {
    await stack?.close();
    await stopAllChildren();
  });

  it('R7: IdP frozen 12 s while the access tokens are inside the refresh margin → every call 200, no session lost', async () => {
    await useAccessTokenTtl(stack, LONG_TTL);
    const signedInAt = Date.now();
    const users = await signInUsers(stack);
    // The tokens were issued between signedInAt and now; all must enter the margin inside the freeze.
    if (Date.now() - signedInAt > 10_000) throw new Error('signing the users in took over 10 s');
    // Freeze one second before the first token enters its refresh margin (half of its lifetime), so
    // every session's refresh falls inside the freeze, and every token still outlives the freeze.
    const freezeAt = signedInAt + (LONG_TTL / 2 - 1) * 1000;
    expect(freezeAt + FREEZE_MS).toBeLessThan(signedInAt + LONG_TTL * 1000 - 2000);
    const run = await runScenario({
      title: `IdP frozen ${FREEZE_MS / 1000} s, tokens (TTL ${LONG_TTL} s) inside the refresh margin: statuses per second`,
      users,
      warmup: () => sleep(freezeAt - Date.now()),
      inject: async () => {
        stack.idp.child.freeze();
        await sleep(FREEZE_MS);
        stack.idp.child.thaw();
      },
      recoveryMs: 3000,
    });
    // R7: a request holding a valid token never waits for the refresh. 5 s leaves room for a busy
    // machine; a request that waits for the frozen IdP takes up to the freeze's 12 s.
    const findings = new Findings()
      .allOk(run.load.samples, 'during the whole run')
      .fasterThan(run.load.samples, 5000, 'during the whole run')
      .add(await lostSessions(users));
    expectNoProblems(findings.problems);
  });

  it('R5 R5a: IdP frozen 12 s with the access tokens expired → only 503 + Retry-After meanwhile, the same cookie works within 2 s after, no session lost', async () => {
    await useAccessTokenTtl(stack, SHORT_TTL);
    const users = await signInUsers(stack);
    const run = await runScenario({
      title: `IdP frozen ${FREEZE_MS / 1000} s, tokens (TTL ${SHORT_TTL} s) expire during the freeze: statuses per second`,
      users,
      warmup: 3000,
      inject: async () => {
        stack.idp.child.freeze();
        await sleep(FREEZE_MS);
        stack.idp.child.thaw();
      },
      recoveryMs: 4000,
    });
    // After SHORT_TTL seconds of freeze every token has expired: the BFF can only say "try later".
    const expired = run.load.between(run.fault.start + SHORT_TTL * 1000 + 500, run.fault.end);
    const findings = new Findings()
      .none(run.load.samples, [401, 500], 'during the whole run')
      .only(run.during, [IDP_UNAVAILABLE], 'while the IdP was frozen')
      .some(expired, 503, 'once every token had expired')
      .allOk(run.after(2000), 'from 2 s after the IdP came back')
      .add(recoveredWithin(run, users, 2000))
      .add(await lostSessions(users));
    expectNoProblems(findings.problems);
  });

  it('R5 R5a: IdP killed (SIGKILL) and restarted with its grants → only 503 + Retry-After meanwhile, the same cookie works within 2 s after, no session lost', async () => {
    await useAccessTokenTtl(stack, SHORT_TTL);
    const users = await signInUsers(stack);
    const run = await runScenario({
      title: 'IdP killed (SIGKILL), restarted 3 s later with persisted grants: statuses per second',
      users,
      warmup: 3000,
      inject: async () => {
        await stack.idp.child.kill();
        await sleep(3000);
        await stack.idp.restart();
      },
      // Long enough to show when the sessions really recover if it takes more than 2 s (the BFF's
      // back-off is capped at 10 s).
      recoveryMs: 10_000,
    });
    const findings = new Findings()
      .none(run.load.samples, [401, 500], 'during the whole run')
      .only(run.during, [IDP_UNAVAILABLE], 'while the IdP was down')
      .allOk(run.after(2000), 'from 2 s after the IdP came back')
      .add(recoveredWithin(run, users, 2000))
      .add(await lostSessions(users));
    expectNoProblems(findings.problems);
  });

  it('session store: Redis killed (SIGKILL) and restarted from its AOF → only 503 meanwhile, the same cookie works after, no session lost', async () => {
    await useAccessTokenTtl(stack, SHORT_TTL);
    const users = await signInUsers(stack);
    const run = await runScenario({
      title: 'Redis killed (SIGKILL), restarted 3 s later from its append-only file: statuses per second',
      users,
      warmup: 3000,
      inject: async () => {
        await stack.redis.kill();
        await sleep(3000);
        await stack.redis.restart();
      },
      recoveryMs: 4000,
    });
    const findings = new Findings()
      .none(run.load.samples, [401, 500], 'during the whole run')
      .only(run.during, [STORE_UNAVAILABLE], 'while Redis was down')
      .some(run.during, 503, 'while Redis was down')
      .allOk(run.after(2000), 'from 2 s after Redis came back')
      .add(recoveredWithin(run, users, 2000))
      .add(await lostSessions(users));
    expectNoProblems(findings.problems);
  });

  it('upstream: sample API killed (SIGKILL) and restarted → 502 meanwhile, 200 after, no session lost', async () => {
    await useAccessTokenTtl(stack, SHORT_TTL);
    const users = await signInUsers(stack);
    const run = await runScenario({
      title: 'sample API killed (SIGKILL), restarted 3 s later: statuses per second',
      users,
      warmup: 3000,
      inject: async () => {
        await stack.api.child.kill();
        await sleep(3000);
        await stack.api.restart();
      },
      recoveryMs: 4000,
    });
    const findings = new Findings()
      .none(run.load.samples, [401, 500], 'during the whole run')
      .only(run.during, [UPSTREAM_UNAVAILABLE], 'while the API was down')
      .some(run.during, 502, 'while the API was down')
      .allOk(run.after(1000), 'from 1 s after the API came back')
      .add(await lostSessions(users));
    expectNoProblems(findings.problems);
  });

  it('T6: the worker during an IdP freeze keeps succeeding on its cached token until it expires, then recovers', async () => {
    await useAccessTokenTtl(stack, SHORT_TTL);
    const worker = stack.worker!;
    const isCall = (line: Record<string, unknown>) =>
      typeof line.msg === 'string' && line.msg.startsWith('GET /api/reports');
    // Freeze right after the worker renewed its token, so it holds a token with (almost) its whole
    // lifetime left: every call in that time must succeed from the cache, without waiting.
    // The worker logs each renewal (`token renewed`, with the new token's lifetime) as it happens;
    // with renewAhead that is behind the calls, so the renewal line, not a call line, dates the token.
    const isRenewal = (line: Record<string, unknown>) => line.msg === 'token renewed';
    const from = worker.child.json.length;
    const deadline = Date.now() + 3 * SHORT_TTL * 1000;
    while (!worker.child.json.slice(from).some(isRenewal)) {
      if (Date.now() > deadline) throw new Error(`the worker renewed no token:\n${worker.child.tail()}`);
      await sleep(20);
    }
    const start = Date.now();
    stack.idp.child.freeze();
    await sleep(WORKER_FREEZE_MS);
    stack.idp.child.thaw();
    const end = Date.now();
    await sleep(4000);
    const calls = worker.child.json
      .slice(from)
      .filter(isCall)
      .map((line) => ({
        // pino's `time` is when the call ended; `ms` is how long it took.
        sentAt: Number(line.time) - Number(line.ms ?? 0),
        endedAt: Number(line.time),
        status: Number(line.status),
        token: String(line.token),
        error: line.error === undefined ? undefined : String(line.error),
        expiresIn: line.expiresIn === undefined ? undefined : Number(line.expiresIn),
      }));
    const renewal = worker.child.json
      .slice(from)
      .filter((l) => isRenewal(l) && Number(l.time) <= start)
      .at(-1)!;
    // The token the worker holds during the freeze expires one lifetime after it was renewed.
    const expiresAt = Number(renewal.time) + Number(renewal.expiresIn) * 1000;
    const table = [
      `worker (GET /api/reports every 0.5 s, token TTL ${SHORT_TTL} s) around a ${WORKER_FREEZE_MS / 1000} s IdP freeze (* = frozen; token valid until +${((expiresAt - start) / 1000).toFixed(1)} s):`,
      '  sent(s)  took(ms)  status  token     expiresIn  error',
      ...calls.map(
        (c) =>
          `  ${`${c.sentAt >= start && c.sentAt < end ? '*' : ' '}${((c.sentAt - start) / 1000).toFixed(1)}`.padStart(7)}  ${String(c.endedAt - c.sentAt).padStart(8)}  ${String(c.status).padStart(6)}  ${c.token.padEnd(8)}  ${String(c.expiresIn ?? '').padStart(9)}  ${c.error ?? ''}`,
      ),
    ].join('\n');
    console.log(`\n${table}\n`);
    const problems: string[] = [];
    // Calls begun with at least half a second of token life left succeed from the cache without
    // waiting for the IdP (2.5 s leaves room for a busy machine; waiting lasts until the thaw).
    const whileValid = calls.filter((c) => c.sentAt >= start && c.sentAt < expiresAt - 500);
    for (const c of whileValid) {
      if (c.status !== 200 || c.endedAt - c.sentAt > 2500) {
        problems.push(
          `call at +${c.sentAt - start} ms (token valid until +${expiresAt - start} ms) → ${c.status} ${c.error ?? ''} after ${c.endedAt - c.sentAt} ms`,
        );
      }
    }
    const expected = Math.floor((expiresAt - 500 - start) / 500) - 1;
    if (whileValid.length < expected) {
      problems.push(
        `only ${whileValid.length} calls while the cached token was valid (expected ≥ ${expected}: it waited for the IdP)`,
      );
    }
    if (calls.some((c) => c.status === 401))
      problems.push('the API answered 401 (an expired token was sent)');
    const afterCalls = calls.filter((c) => c.sentAt >= end + 2000);
    if (afterCalls.length === 0 || afterCalls.some((c) => c.status !== 200)) {
      problems.push(
        `not recovered 2 s after the freeze: ${afterCalls.map((c) => c.status).join(',') || 'no calls'}`,
      );
    }
    if (!worker.child.running) problems.push('the worker process exited');
    expectNoProblems(problems);
  });
});
