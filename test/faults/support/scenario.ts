// One fault scenario: steady load, a warm-up, the fault (inject → recover), a recovery period, then
// the per-second table and the checks every fault shares (no 401, no 500, no lost session).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { call, Load, type Sample, statusTable, type VirtualUser } from './load.js';
import { ROOT } from './processes.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

/** Where each scenario's table is written too (the CI log has them as well). */
export const RESULTS_DIR = join(ROOT, 'test-results', 'faults');

export interface ScenarioRun {
  readonly load: Load;
  /** When the fault began and when the faulty part was back (epoch ms). */
  readonly fault: { start: number; end: number };
  readonly table: string;
  /** Requests sent while the fault lasted. */
  readonly during: Sample[];
  /** Requests sent from `graceMs` after the fault ended. */
  after(graceMs: number): Sample[];
}

export async function runScenario(options: {
  title: string;
  users: readonly VirtualUser[];
  rate?: number;
  path?: string;
  /** Load before the fault, ms (or a function that waits for the right moment). */
  warmup: number | (() => Promise<void>);
  /** Injects the fault and resolves when the faulty part is back. */
  inject: () => Promise<void>;
  /** Load after the fault, ms. */
  recoveryMs: number;
}): Promise<ScenarioRun> {
  const load = new Load(options.users, {
    path: options.path ?? '/api/todos',
    rate: options.rate ?? 50,
  }).start();
  let fault: { start: number; end: number };
  try {
    if (typeof options.warmup === 'number') await sleep(options.warmup);
    else await options.warmup();
    const start = Date.now();
    await options.inject();
    fault = { start, end: Date.now() };
    await sleep(options.recoveryMs);
  } finally {
    await load.stop();
  }
  const table = statusTable(options.title, load.samples, fault);
  console.log(`\n${table}\n`);
  await mkdir(RESULTS_DIR, { recursive: true });
  const slug = options.title
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 60);
  await writeFile(join(RESULTS_DIR, `${slug}.txt`), `${table}\n`);
  return {
    load,
    fault,
    table,
    during: load.between(fault.start, fault.end),
    after: (graceMs) => load.between(fault.end + graceMs, Number.POSITIVE_INFINITY),
  };
}

/** An answer a fault may cause instead of 200. */
export interface Expected {
  status: number;
  /** The `error` code the JSON body must carry. */
  code?: string;
  /** The answer must carry `Retry-After`. */
  retryAfter?: boolean;
}

/** The BFF's answer while the IdP cannot refresh a token: the session is kept, try again later. */
export const IDP_UNAVAILABLE: Expected = { status: 503, code: 'ERR_BFF_IDP_UNAVAILABLE', retryAfter: true };
/** The BFF's answer while its session store is down. */
export const STORE_UNAVAILABLE: Expected = { status: 503, code: 'ERR_BFF_STORE_UNAVAILABLE' };
/** The BFF's answer while the upstream API refuses connections. */
export const UPSTREAM_UNAVAILABLE: Expected = { status: 502, code: 'ERR_BFF_UPSTREAM_UNAVAILABLE' };

/** Describes what is wrong with a set of samples, one line per kind of problem (empty = fine). */
export class Findings {
  readonly problems: string[] = [];

  /** No request of `samples` got one of `statuses`. */
  none(samples: readonly Sample[], statuses: readonly number[], where: string): this {
    for (const status of statuses) {
      const hits = samples.filter((s) => s.status === status);
      if (hits.length > 0) this.problems.push(`${hits.length} × ${label(status)} ${where}`);
    }
    return this;
  }

  /** Every request of `samples` got 200. */
  allOk(samples: readonly Sample[], where: string): this {
    const bad = samples.filter((s) => s.status !== 200);
    if (bad.length > 0)
      this.problems.push(`${bad.length} of ${samples.length} not 200 ${where}: ${summary(bad)}`);
    if (samples.length === 0) this.problems.push(`no request was sent ${where}`);
    return this;
  }

  /**
   * Every request of `samples` got 200 or one of the `allowed` answers: a status, with the error
   * code it must carry and whether it must carry `Retry-After`.
   */
  only(samples: readonly Sample[], allowed: readonly Expected[], where: string): this {
    const fits = (s: Sample, e: Expected) =>
      s.status === e.status && (e.code === undefined || s.code === e.code);
    const bad = samples.filter((s) => s.status !== 200 && !allowed.some((e) => fits(s, e)));
    if (bad.length > 0) {
      const wanted = allowed.map((e) => `${e.status}${e.code ? ` ${e.code}` : ''}`).join(' or ');
      this.problems.push(`${bad.length} answers other than 200 or ${wanted} ${where}: ${summary(bad)}`);
    }
    for (const e of allowed) {
      if (!e.retryAfter) continue;
      const missing = samples.filter((s) => fits(s, e) && !s.retryAfter);
      if (missing.length > 0)
        this.problems.push(`${missing.length} × ${e.status} without Retry-After ${where}`);
    }
    return this;
  }

  /** No request of `samples` took longer than `limitMs` to answer (it did not wait for the fault). */
  fasterThan(samples: readonly Sample[], limitMs: number, where: string): this {
    const slow = samples.filter((s) => s.ms > limitMs);
    if (slow.length > 0) {
      const worst = Math.max(...slow.map((s) => s.ms));
      this.problems.push(
        `${slow.length} answers took longer than ${limitMs} ms ${where} (slowest ${worst} ms)`,
      );
    }
    return this;
  }

  /** At least one of `samples` got `status` (the fault was really felt). */
  some(samples: readonly Sample[], status: number, where: string): this {
    if (!samples.some((s) => s.status === status)) {
      this.problems.push(`expected some ${label(status)} ${where}, saw ${summary(samples) || 'nothing'}`);
    }
    return this;
  }

  add(problem: string | undefined): this {
    if (problem) this.problems.push(problem);
    return this;
  }
}

function label(status: number): string {
  return status === 0 ? 'network error' : status === -1 ? 'client timeout' : String(status);
}

function summary(samples: readonly Sample[]): string {
  const counts = new Map<string, number>();
  for (const s of samples) {
    const key = `${label(s.status)}${s.code ? ` ${s.code}` : ''}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => `${k} ×${n}`).join(', ');
}

/**
 * No lost session: every user's saved sign-in cookie still answers `GET /bff/user` with 200 at
 * every BFF origin. Returns a problem line, or undefined.
 */
export async function lostSessions(users: readonly VirtualUser[]): Promise<string | undefined> {
  const lost: string[] = [];
  await Promise.all(
    users.flatMap((user) =>
      user.origins.map(async (origin) => {
        const sample = await call(user, origin, '/bff/user', { cookie: user.cookie, timeoutMs: 10_000 });
        if (sample.status !== 200) lost.push(`${user.name}@${origin} → ${label(sample.status)}`);
      }),
    ),
  );
  return lost.length > 0
    ? `${lost.length} of ${users.length} sessions lost (GET /bff/user with the sign-in cookie): ${lost.sort().join(', ')}`
    : undefined;
}

/**
 * "The same cookie works within `withinMs` after the fault": for each user, the first request sent
 * after the fault from which on every request of that user got 200 must be within `withinMs`.
 */
export function recoveredWithin(run: ScenarioRun, users: readonly VirtualUser[], withinMs: number) {
  const late: string[] = [];
  for (const user of users) {
    const mine = run.load.samples
      .filter((s) => s.user === user.name && s.sentAt >= run.fault.end)
      .sort((a, b) => a.sentAt - b.sentAt);
    let firstGood: number | undefined;
    for (const s of mine) {
      if (s.status === 200) firstGood ??= s.sentAt;
      else firstGood = undefined;
    }
    if (firstGood === undefined)
      late.push(
        `${user.name}: not within the ${(((mine.at(-1)?.sentAt ?? run.fault.end) - run.fault.end) / 1000).toFixed(1)} s watched`,
      );
    else if (firstGood - run.fault.end > withinMs) late.push(`${user.name}: ${firstGood - run.fault.end} ms`);
  }
  return late.length > 0
    ? `not recovered within ${withinMs} ms of the fault's end: ${late.join(', ')}`
    : undefined;
}
