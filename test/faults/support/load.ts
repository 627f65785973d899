// Steady open-loop load across signed-in virtual users (a request is sent every 1/rate seconds
// whether or not the previous ones answered, as browsers would keep calling), every answer recorded
// with the second it was sent, and the per-second status table the fault tests print.
import { TestBrowser } from '@gatehouse/testing';

/** A browser that signed in at a BFF, and the session cookie it got then. */
export interface VirtualUser {
  readonly name: string;
  readonly browser: TestBrowser;
  /** The BFF origin(s) this user's calls go to, round-robin (two BFFs behind a "load balancer"). */
  readonly origins: readonly string[];
  /** `name=value` of the session cookie right after sign-in: "the same cookie works" is checked with it. */
  readonly cookie: string;
}

/** The session cookie's name (the BFF's default). */
export const SESSION_COOKIE = '__Host-bff';

/** Signs `username` in at `origins[0]` with a fresh TestBrowser (the IdP's real login form). */
export async function signIn(
  label: string,
  username: string,
  origins: readonly string[],
): Promise<VirtualUser> {
  const browser = new TestBrowser();
  const origin = origins[0]!;
  // A wedged BFF must fail the scenario with a message, not hang it until the test's own timeout.
  let timer: NodeJS.Timeout | undefined;
  const done = await Promise.race([
    browser.login(`${origin}/bff/login`, { username, password: username }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`sign-in of ${username} at ${origin} took over 30 s`)),
        30_000,
      );
    }),
  ]).finally(() => clearTimeout(timer));
  const value = await browser.cookie(origin, SESSION_COOKIE);
  // Where the chain ends (the SPA's page) does not matter here; that the session works does.
  const user: VirtualUser = { name: label, browser, origins, cookie: `${SESSION_COOKIE}=${value}` };
  const check = value ? await call(user, origin, '/bff/user', { timeoutMs: 10_000 }) : undefined;
  if (new URL(done.url).origin !== origin || check?.status !== 200) {
    throw new Error(
      `sign-in of ${username} ended at ${done.status} ${done.url.split('?')[0]} (${done.hops.map((h) => h.status).join(' → ')}); ` +
        `${value ? `GET /bff/user → ${check?.status}` : `no ${SESSION_COOKIE} cookie`}`,
    );
  }
  return user;
}

/** One request of the load. Times are epoch milliseconds. */
export interface Sample {
  user: string;
  origin: string;
  sentAt: number;
  ms: number;
  /** HTTP status; 0 = network error (refused, reset), -1 = no answer within the client timeout. */
  status: number;
  /** The problem/JSON `error` or `code` of a non-2xx answer. */
  code?: string | undefined;
  retryAfter?: string | undefined;
}

/** An XHR-like call from the SPA: same-origin fetch with `X-CSRF: 1`, only this user's cookies. */
export async function call(
  user: VirtualUser,
  origin: string,
  path: string,
  options: { timeoutMs?: number; cookie?: string } = {},
): Promise<Sample> {
  const sentAt = Date.now();
  const headers: Record<string, string> = { 'x-csrf': '1', accept: 'application/json' };
  // An explicit cookie replays a saved value instead of whatever the jar holds now.
  if (options.cookie) headers.cookie = options.cookie;
  try {
    const res = await user.browser.fetch(`${origin}${path}`, {
      headers,
      initiator: `${origin}/`,
      signal: AbortSignal.timeout(options.timeoutMs ?? 20_000),
    });
    const text = await res.text();
    let code: string | undefined;
    if (!res.ok) {
      try {
        const body = JSON.parse(text) as { error?: unknown; code?: unknown };
        code =
          typeof body.error === 'string' ? body.error : typeof body.code === 'string' ? body.code : undefined;
      } catch {
        code = undefined;
      }
    }
    return {
      user: user.name,
      origin,
      sentAt,
      ms: Date.now() - sentAt,
      status: res.status,
      code,
      retryAfter: res.headers.get('retry-after') ?? undefined,
    };
  } catch (error) {
    const timedOut = (error as Error).name === 'TimeoutError' || (error as Error).name === 'AbortError';
    return { user: user.name, origin, sentAt, ms: Date.now() - sentAt, status: timedOut ? -1 : 0 };
  }
}

/** Runs `rate` requests per second of `GET path` spread over `users` until stopped. */
export class Load {
  readonly samples: Sample[] = [];
  readonly #users: readonly VirtualUser[];
  readonly #path: string;
  readonly #rate: number;
  readonly #timeoutMs: number;
  readonly #inflight = new Set<Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #next = 0;

  constructor(users: readonly VirtualUser[], options: { path: string; rate: number; timeoutMs?: number }) {
    this.#users = users;
    this.#path = options.path;
    this.#rate = options.rate;
    this.#timeoutMs = options.timeoutMs ?? 20_000;
  }

  start(): this {
    const started = performance.now();
    let sent = 0;
    // A 10 ms tick sends however many requests are due, so the rate holds even when the event loop
    // is busy for a moment (as it is while hundreds of requests hang during a fault).
    this.#timer = setInterval(() => {
      const due = Math.floor(((performance.now() - started) / 1000) * this.#rate);
      for (; sent < due; sent++) this.#fire();
    }, 10);
    return this;
  }

  #fire(): void {
    const user = this.#users[this.#next % this.#users.length]!;
    const origin = user.origins[Math.floor(this.#next / this.#users.length) % user.origins.length]!;
    this.#next++;
    const pending = call(user, origin, this.#path, { timeoutMs: this.#timeoutMs }).then((sample) => {
      this.samples.push(sample);
    });
    this.#inflight.add(pending);
    void pending.finally(() => this.#inflight.delete(pending));
  }

  /** Stops sending and waits for every request in flight (each ends by its client timeout at worst). */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await Promise.all([...this.#inflight]);
  }

  /** Samples sent in [from, to) (epoch ms). */
  between(from: number, to: number): Sample[] {
    return this.samples.filter((s) => s.sentAt >= from && s.sentAt < to);
  }
}

/** The status columns of the table, in order; anything else is counted as `other`. */
const COLUMNS: ReadonlyArray<[string, (s: Sample) => boolean]> = [
  ['200', (s) => s.status === 200],
  ['401', (s) => s.status === 401],
  ['500', (s) => s.status === 500],
  ['502', (s) => s.status === 502],
  ['503', (s) => s.status === 503],
  ['504', (s) => s.status === 504],
  ['other', (s) => s.status > 0 && ![200, 401, 500, 502, 503, 504].includes(s.status)],
  ['net', (s) => s.status === 0],
  ['t/o', (s) => s.status === -1],
];

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
}

/**
 * Status counts per second (by the second each request was *sent*, relative to the fault's start),
 * rows inside the fault marked with `*`, plus the median and the slowest answer time of each second.
 */
export function statusTable(
  title: string,
  samples: readonly Sample[],
  fault: { start: number; end: number },
): string {
  if (samples.length === 0) return `${title}\n  (no requests)`;
  // Answer times are in the table too: a call that waits 10 s for a frozen IdP is a fault as well.
  const second = (t: number) => Math.floor((t - fault.start) / 1000);
  const rows = new Map<number, Sample[]>();
  for (const s of samples) {
    const key = second(s.sentAt);
    let row = rows.get(key);
    if (!row) {
      row = [];
      rows.set(key, row);
    }
    row.push(s);
  }
  const keys = [...rows.keys()].sort((a, b) => a - b);
  const header = ['   s', 'sent', ...COLUMNS.map(([name]) => name), 'p50 ms', 'max ms'];
  const width = header.map((h) => Math.max(h.length, 5));
  const fmt = (cells: string[]) => cells.map((c, i) => c.padStart(width[i]!)).join(' |');
  const lines = [title, fmt(header), width.map((w) => '-'.repeat(w)).join('-+')];
  const faultSeconds = (fault.end - fault.start) / 1000;
  for (const key of keys) {
    const row = rows.get(key)!;
    const inFault = key >= 0 && key < Math.ceil(faultSeconds);
    lines.push(
      fmt([
        `${inFault ? '*' : ' '}${key}`,
        String(row.length),
        ...COLUMNS.map(([, match]) => {
          const n = row.filter(match).length;
          return n === 0 ? '.' : String(n);
        }),
        String(
          percentile(
            row.map((s) => s.ms),
            0.5,
          ),
        ),
        String(Math.max(...row.map((s) => s.ms))),
      ]),
    );
  }
  const total = (match: (s: Sample) => boolean) => samples.filter(match).length;
  lines.push(
    `  total ${samples.length}: ${COLUMNS.map(([name, match]) => `${name}=${total(match)}`).join(' ')}` +
      `  (* = inside the fault, ${faultSeconds.toFixed(1)} s)`,
  );
  const codes = new Map<string, number>();
  for (const s of samples) {
    if (s.status !== 200) {
      const key = `${s.status}${s.code ? ` ${s.code}` : ''}${s.status === 503 ? (s.retryAfter ? ' +Retry-After' : ' no Retry-After') : ''}`;
      codes.set(key, (codes.get(key) ?? 0) + 1);
    }
  }
  if (codes.size > 0) {
    lines.push(`  non-200: ${[...codes].map(([k, n]) => `${k} ×${n}`).join(', ')}`);
  }
  return lines.join('\n');
}
