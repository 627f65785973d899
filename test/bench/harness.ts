// A small benchmark harness: every suite measures its baseline in the same run and prints a table of
// ratios against it, so figures from different machines are never compared directly.
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** autocannon's command-line entry point (its package main doubles as the CLI). */
const autocannonCli = createRequire(import.meta.url).resolve('autocannon');

export interface BenchRow {
  name: string;
  /** Operations (or requests) per second. */
  opsPerSec: number;
  /** Latency percentiles in milliseconds, where measured. */
  p50Ms?: number;
  p99Ms?: number;
  /** Paced loads: p99 counted from each request's actual send, without the pacer's own timer lateness. */
  p99SentMs?: number;
  /**
   * CPU time this process spent per request while serving the load (µs): unlike a rate, it barely
   * moves when other work on the machine takes CPU away, so ratios of it are stable on a busy host.
   */
  cpuUsPerReq?: number;
  note?: string;
}

/** Runs `fn` repeatedly for about `seconds` (after a warm-up) and returns calls per second. */
export async function measureCalls(
  fn: () => unknown,
  seconds = Number(process.env.BENCH_SECONDS ?? 2),
): Promise<number> {
  const warmUntil = performance.now() + 200;
  while (performance.now() < warmUntil) await fn();
  let calls = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  // Check the clock every 256 calls so the timer itself stays out of the measurement.
  while (true) {
    for (let i = 0; i < 256; i++) await fn();
    calls += 256;
    if (performance.now() >= end) break;
  }
  return calls / ((performance.now() - start) / 1000);
}

export interface HttpLoad {
  url: string;
  headers?: Record<string, string>;
  connections?: number;
  seconds?: number;
  /** Fixed request rate (requests per second over all connections); unset = as fast as possible. */
  rate?: number;
}

/**
 * Drives an HTTP endpoint with autocannon (keep-alive connections) and reports rate and latency.
 * The load generator runs in a child process: in the servers' own process it would take turns on the
 * same event loop with the code under test and flatten every difference between the cases.
 */
export async function measureHttp(load: HttpLoad): Promise<Omit<BenchRow, 'name'>> {
  const args = [
    autocannonCli,
    '--json',
    '--connections',
    String(load.connections ?? 10),
    '--duration',
    String(load.seconds ?? Number(process.env.BENCH_SECONDS ?? 3)),
    ...(load.rate === undefined ? [] : ['--overallRate', String(load.rate)]),
    ...Object.entries(load.headers ?? {}).flatMap(([name, value]) => ['--headers', `${name}=${value}`]),
    load.url,
  ];
  collectGarbage();
  // The servers under test run in this process; autocannon runs in a child, so this counts theirs only.
  const cpuBefore = process.cpuUsage();
  const output = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, args, { maxBuffer: 16 * 1024 * 1024 }, (error, stdout) =>
      error ? reject(new Error(`autocannon failed for ${load.url}: ${error.message}`)) : resolve(stdout),
    );
  });
  const cpu = process.cpuUsage(cpuBefore);
  const result = JSON.parse(output) as {
    non2xx: number;
    errors: number;
    requests: { average: number; total: number };
    latency: { p50: number; p99: number };
  };
  if (result.non2xx > 0 || result.errors > 0) {
    throw new Error(
      `${load.url}: ${result.non2xx} non-2xx responses and ${result.errors} errors during the run`,
    );
  }
  return {
    opsPerSec: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    cpuUsPerReq: (cpu.user + cpu.system) / Math.max(1, result.requests.total),
  };
}

// A full collection before each measurement, so garbage one case left behind (express-openid-connect
// makes a lot) is not collected on the next case's time. `gc` is only exposed when the flag is set.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Runs a full garbage collection now. */
export function collectGarbage(): void {
  gc();
}

export interface PacedLoad {
  url: string;
  headers?: Record<string, string>;
  /** Requests per second, sent at fixed intervals. */
  rate: number;
  seconds?: number;
}

const pacerFile = join(dirname(fileURLToPath(import.meta.url)), 'pacer.ts');

/**
 * Sends requests at a steady rate (fixed intervals, from a child process) and reports latency measured
 * from each request's scheduled start: what a user feels at a moderate load, without autocannon's bursts.
 */
export async function measurePaced(load: PacedLoad): Promise<Omit<BenchRow, 'name'>> {
  collectGarbage();
  const input = JSON.stringify({
    url: load.url,
    headers: load.headers ?? {},
    rate: load.rate,
    seconds: load.seconds ?? Number(process.env.BENCH_SECONDS ?? 3),
  });
  const output = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', pacerFile, input], (error, stdout) =>
      error ? reject(new Error(`pacer failed for ${load.url}: ${error.message}`)) : resolve(stdout),
    );
  });
  const result = JSON.parse(output) as {
    sent: number;
    failed: number;
    p50Ms: number;
    p99Ms: number;
    p99SentMs: number;
  };
  if (result.failed > 0) throw new Error(`${load.url}: ${result.failed} failed paced requests`);
  return { opsPerSec: load.rate, p50Ms: result.p50Ms, p99Ms: result.p99Ms, p99SentMs: result.p99SentMs };
}

/** Prints rows as a table with each row's rate as a ratio of the baseline row's. */
export function printTable(title: string, rows: BenchRow[], baseline: string): void {
  const base = rows.find((row) => row.name === baseline);
  if (!base) throw new Error(`baseline "${baseline}" is not among the rows`);
  const fmt = (n: number | undefined, digits = 0) => (n === undefined ? '' : n.toFixed(digits));
  const table = rows.map((row) => ({
    case: row.name,
    'ops/s': fmt(row.opsPerSec),
    [`× ${baseline}`]: (row.opsPerSec / base.opsPerSec).toFixed(2),
    'p50 ms': fmt(row.p50Ms, 2),
    'p99 ms': fmt(row.p99Ms, 2),
    ...(rows.some((r) => r.cpuUsPerReq !== undefined) ? { 'CPU µs/req': fmt(row.cpuUsPerReq, 0) } : {}),
    note: row.note ?? '',
  }));
  console.log(`\n${title}`);
  console.table(table);
}
