// What a warm proxied call allocates in the proxy's process: the bare node:http proxy (the floor), the
// same on an undici Pool, the BFF's proxy engine with a fixed token, the BFF with its memory store and
// with the Redis store, and one session read alone (sessions.load on each store). Goal: a BFF call
// allocates no more than the bare proxy plus one session read.
//
// Each case runs in its own process (allocation-server.ts) with a young generation so large that no
// collection runs during a measured window: the heap only grows, so its growth over N calls is what
// those calls allocated, to the byte. A window in which a collection ran anyway is refused. Each figure
// is the smallest of BENCH_ROUNDS windows, less an empty window (the start/stop messages themselves).
// Only the JS heap is counted: Buffer backing stores live outside it, and their counter also drops
// while a window runs (stores freed by the collection before it are released late), so it cannot be
// read the same way.
// The BFF cases alternate between two Cookie headers naming the same session, so each call parses its
// cookie as a call among many users' calls would. The upstream and the load generator run in this process, so only the proxy's own allocations count.
//
// `BENCH_ONLY=allocations npm run bench` (BENCH_ALLOC_CALLS=5000, BENCH_ROUNDS=3). With
// BENCH_ALLOC_PROFILE=<dir>, each case also writes a sampling heap profile of its first window there
// (open it in Chrome DevTools › Memory) and the top allocation sites are printed.
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { getFreePort, isRedisAvailable, TestBrowser, uniqueRedisPrefix } from '@gatehouse/testing';
import { Pool } from 'undici';
import type {
  AllocationCase,
  ChildMessage,
  ParentMessage,
  ServerInput,
  WindowResult,
} from './allocation-server.js';
import { extraBffClient, startIdpProcess, startUpstream } from './servers.js';

const PATH = '/api/data';
const serverFile = join(dirname(fileURLToPath(import.meta.url)), 'allocation-server.ts');

const CASES: ReadonlyArray<{ kind: AllocationCase; name: string }> = [
  { kind: 'bare-node', name: 'bare node:http proxy (keep-alive Agent)' },
  { kind: 'bare-undici', name: 'bare node:http server + undici Pool' },
  { kind: 'engine-only', name: 'BFF proxy engine only (fixed token)' },
  { kind: 'bff-memory', name: '@gatehouse/bff (memory store)' },
  { kind: 'bff-redis', name: '@gatehouse/bff (Redis store)' },
];

/** A case's process, driven over IPC. */
class CaseProcess {
  readonly #child: ChildProcess;
  readonly #waiting: Array<{ resolve(message: ChildMessage): void; reject(err: Error): void }> = [];

  constructor(
    readonly name: string,
    input: ServerInput,
  ) {
    this.#child = fork(serverFile, [JSON.stringify(input)], {
      execArgv: [
        '--conditions=@gatehouse/source',
        '--import',
        'tsx',
        // 1 GiB semi-spaces: several windows of calls fit without a single scavenge.
        '--max-semi-space-size=1024',
        '--min-semi-space-size=1024',
        // No collections started by a timer or a background task (heap shrinking, incremental marking):
        // they landed in the Redis case's windows now and then.
        '--no-memory-reducer',
        '--no-incremental-marking',
      ],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.#child.on('message', (message: ChildMessage) => this.#waiting.shift()?.resolve(message));
    this.#child.once('exit', (code) => {
      for (const waiter of this.#waiting.splice(0))
        waiter.reject(new Error(`allocation server exited (${code})`));
    });
  }

  next(): Promise<ChildMessage> {
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  async ask(message: ParentMessage): Promise<ChildMessage> {
    const answer = this.next();
    this.#child.send(message);
    return answer;
  }

  window(label: string, calls: () => Promise<void>): Promise<WindowResult | undefined> {
    return cleanWindow(`${this.name} ${label}`, async () => {
      await this.ask({ op: 'start', label });
      await calls();
      return resultOf(await this.ask({ op: 'stop' }));
    });
  }

  async close(): Promise<void> {
    const exited = new Promise((resolve) => this.#child.once('exit', resolve));
    await this.ask({ op: 'close' }).catch(() => {});
    await exited;
  }
}

function resultOf(message: ChildMessage): WindowResult {
  if (message.op !== 'result') throw new Error(`unexpected answer ${message.op}`);
  return message.result;
}

/**
 * Measures one window, again when a collection ran in it (one can still start now and then): its heap
 * growth would not be what the window allocated. After 3 such windows in a row: undefined, and the
 * case's figure is left out (shown as n/a) rather than wrong.
 */
async function cleanWindow(
  label: string,
  measure: () => Promise<WindowResult>,
): Promise<WindowResult | undefined> {
  for (let attempt = 1; attempt <= 3; attempt++) {
    const result = await measure();
    if (result.collections.length === 0) return result;
    if (attempt === 3)
      console.warn(`(allocations: ${label}: a collection ran in 3 windows in a row; left out)`);
  }
  return undefined;
}

/**
 * Sends `calls` GETs, `concurrency` at a time on keep-alive connections; every answer must be 200.
 * `variants` are header sets used in turn (the BFF cases: two Cookie headers naming the same session,
 * so no call's cookie is answered from the session step's memo of the previous call's header).
 */
async function drive(
  pool: Pool,
  variants: readonly Record<string, string>[],
  calls: number,
  concurrency: number,
) {
  let left = calls;
  const worker = async () => {
    while (left-- > 0) {
      const headers = variants[left % variants.length];
      const { statusCode, body } = await pool.request({ path: PATH, method: 'GET', headers });
      await body.text();
      if (statusCode !== 200) throw new Error(`${PATH} answered ${statusCode}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

interface CaseResult {
  kind: AllocationCase;
  name: string;
  /** Per call, the empty window's bytes taken off. */
  heapPerCall: number;
  sites?: WindowResult['sites'];
  sessionRead?: { heapPerCall: number; sites?: WindowResult['sites'] };
}

/** The smallest figure of the clean windows (NaN when there was none). */
const smallest = (results: readonly (WindowResult | undefined)[]) => {
  const clean = results.filter((result) => result !== undefined);
  return clean.length === 0 ? Number.NaN : Math.min(...clean.map((result) => result.heapBytes));
};

export async function main(): Promise<void> {
  const calls = Number(process.env.BENCH_ALLOC_CALLS ?? 5000);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const concurrency = 8;
  const profileDir = process.env.BENCH_ALLOC_PROFILE ? resolve(process.env.BENCH_ALLOC_PROFILE) : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const redis = await isRedisAvailable();
  const upstream = await startUpstream();
  const bffPort = await getFreePort();
  const bffRedisPort = await getFreePort();
  const idp = await startIdpProcess({
    bffBaseUrl: `http://127.0.0.1:${bffPort}`,
    extraClients: [extraBffClient('bff-redis', bffRedisPort)],
  });
  const results: CaseResult[] = [];
  try {
    for (const { kind, name } of CASES) {
      if (kind === 'bff-redis' && !redis) {
        console.warn('(allocations: Redis store case skipped, no Redis)');
        continue;
      }
      const isBff = kind === 'bff-memory' || kind === 'bff-redis';
      const child = new CaseProcess(name, {
        kind,
        upstream: upstream.url,
        issuer: idp.issuer,
        port: kind === 'bff-redis' ? bffRedisPort : bffPort,
        redisPrefix: uniqueRedisPrefix('bench-alloc'),
        ...(profileDir ? { profileDir } : {}),
      });
      const ready = await child.next();
      if (ready.op !== 'ready') throw new Error(`${name}: did not start`);
      const headers: Record<string, string> = { 'x-csrf': '1' };
      const variants = [headers];
      if (isBff) {
        const browser = new TestBrowser();
        const login = await browser.login(`${ready.url}/bff/login`, { username: 'alice', password: 'alice' });
        if (!login.url.startsWith(ready.url)) throw new Error(`${name}: login ended at ${login.url}`);
        headers.cookie = await browser.jar.getCookieString(`${ready.url}${PATH}`);
        variants.push({ ...headers, cookie: `${headers.cookie}; other=1` });
      }
      const pool = new Pool(ready.url, { connections: concurrency });
      try {
        // Warm: connections open both ways, code optimised, caches (cookie HMAC, tokens) filled.
        await drive(pool, variants, calls * 2, concurrency);
        const empty = await child.window('empty', async () => {});
        const emptyBytes = empty?.heapBytes ?? Number.NaN;
        const windows: (WindowResult | undefined)[] = [];
        for (let round = 0; round < rounds; round++)
          windows.push(await child.window(`calls-${round}`, () => drive(pool, variants, calls, concurrency)));
        const result: CaseResult = {
          kind,
          name,
          heapPerCall: (smallest(windows) - emptyBytes) / calls,
          ...(windows[0]?.sites ? { sites: windows[0].sites } : {}),
        };
        if (isBff) {
          const cookie = headers.cookie as string;
          const reads: (WindowResult | undefined)[] = [];
          for (let round = 0; round < rounds; round++) {
            const message: ParentMessage = { op: 'session-reads', cookie, warm: calls, calls, concurrency };
            reads.push(
              await cleanWindow(`${name} session reads`, async () => resultOf(await child.ask(message))),
            );
          }
          result.sessionRead = {
            heapPerCall: (smallest(reads) - emptyBytes) / calls,
            ...(reads[0]?.sites ? { sites: reads[0].sites } : {}),
          };
        }
        results.push(result);
      } finally {
        await pool.close();
        await child.close();
      }
    }
  } finally {
    await upstream.close();
    await idp.close();
  }
  report(results, calls, rounds, concurrency, profileDir);
}

function report(
  results: CaseResult[],
  calls: number,
  rounds: number,
  concurrency: number,
  profileDir: string | undefined,
): void {
  const base = results[0] as CaseResult;
  const undici = results.find((r) => r.kind === 'bare-undici');
  const fmt = (n: number, digits = 0) => (Number.isNaN(n) ? 'n/a' : n.toFixed(digits));
  const row = (name: string, heap: number, note = '') => ({
    case: name,
    'JS heap B/call': fmt(heap),
    '× bare node:http': fmt(heap / base.heapPerCall, 2),
    note,
  });
  const rows = results.map((r) => row(r.name, r.heapPerCall));
  for (const r of results) {
    if (!r.sessionRead) continue;
    rows.push(
      row(
        `one session read (${r.kind === 'bff-redis' ? 'Redis' : 'memory'} store)`,
        r.sessionRead.heapPerCall,
        'sessions.load(cookie) alone',
      ),
    );
  }
  console.log(
    `\nAllocations of a warm proxied GET ${PATH}, in the proxy's process (${calls} calls, ${concurrency} at a time, ` +
      `smallest of ${rounds} windows without a collection)`,
  );
  console.table(rows);
  for (const r of results) {
    if (!r.sessionRead) continue;
    const against = (floor: CaseResult) => {
      const budget = floor.heapPerCall + (r.sessionRead?.heapPerCall ?? Number.NaN);
      return `${fmt(floor.heapPerCall)} + ${fmt(r.sessionRead?.heapPerCall ?? Number.NaN)} = ${fmt(budget)} B/call: ${fmt(r.heapPerCall / budget, 2)}×`;
    };
    console.log(
      `${r.name}: ${fmt(r.heapPerCall)} B/call vs the bare node:http proxy + one session read = ${against(base)} (goal ≤ 1)` +
        (undici
          ? `; vs the bare undici proxy (the BFF's own client) + one session read = ${against(undici)}`
          : ''),
    );
  }
  if (!profileDir) return;
  for (const r of results) {
    for (const [label, sites] of [
      [r.name, r.sites],
      [`${r.name}, session read alone`, r.sessionRead?.sites],
    ] as const) {
      if (!sites) continue;
      console.log(`\nTop allocation sites, ${label} (B/call; profiles in ${profileDir})`);
      for (const { site, bytes } of sites.slice(0, 15))
        console.log(`${(bytes / calls).toFixed(0).padStart(7)}  ${site}`);
    }
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
