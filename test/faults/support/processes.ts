// Real processes for the fault suite: the sample apps (each its own `node --import tsx` process, as
// `npm start` runs them) and a dedicated redis-server, with the signals the faults need (SIGSTOP /
// SIGCONT to freeze, SIGKILL to crash) and a registry that ends every child on the way out, even
// when a test or hook throws or the test process itself exits early.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { inCI } from '@gatehouse/testing';

/** The repository root (the apps are started from here, like the launcher does). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How many log lines of each child are kept for failure messages. */
const KEEP_LINES = 400;

/** A child process the suite started. */
export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  /** The newest stdout/stderr lines (pino JSON for the apps). */
  readonly lines: string[];
  /** Every parsed pino line, when `keepJson` was asked for (the worker's call log). */
  readonly json: Array<Record<string, unknown>>;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
  readonly running: boolean;
  /** SIGSTOP: the process keeps its sockets but answers nothing (the kernel still accepts connections). */
  freeze(): void;
  /** SIGCONT. */
  thaw(): void;
  /** SIGKILL, then waits for the exit. */
  kill(): Promise<void>;
  /** SIGCONT + SIGTERM, SIGKILL after `graceMs`, waits for the exit. */
  stop(graceMs?: number): Promise<void>;
  /** The last lines, for an error message. */
  tail(n?: number): string;
}

const children = new Set<Child>();

// A last resort when the test process ends without running afterAll (a crash, a timeout kill, Ctrl-C):
// no orphaned IdP or redis-server may outlive the suite, and a frozen one would never exit by itself.
function killAllNow(): void {
  for (const child of children) {
    if (!child.running) continue;
    try {
      child.process.kill('SIGCONT');
      child.process.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}
process.once('exit', killAllNow);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    killAllNow();
    // Then die of the same signal, as without this handler.
    process.kill(process.pid, signal);
  });
}

/** Spawns `command args` and tracks it in the registry. */
export function spawnChild(
  name: string,
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; keepJson?: boolean } = {},
): Child {
  const proc = spawn(command, args, {
    cwd: options.cwd ?? ROOT,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const json: Array<Record<string, unknown>> = [];
  const keep = (line: string) => {
    lines.push(line);
    if (lines.length > KEEP_LINES) lines.splice(0, lines.length - KEEP_LINES);
    if (options.keepJson && line.startsWith('{')) {
      try {
        json.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not pino
      }
    }
  };
  for (const stream of [proc.stdout, proc.stderr]) {
    if (stream) createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY }).on('line', keep);
  }
  let running = true;
  const exited = new Promise<void>((resolveExit) => {
    proc.once('exit', () => {
      running = false;
      resolveExit();
    });
    proc.once('error', (error) => {
      keep(`spawn error: ${error.message}`);
      running = false;
      resolveExit();
    });
  });
  const signal = (sig: NodeJS.Signals) => {
    if (running) proc.kill(sig);
  };
  const child: Child = {
    name,
    process: proc,
    lines,
    json,
    exited,
    get running() {
      return running;
    },
    freeze: () => signal('SIGSTOP'),
    thaw: () => signal('SIGCONT'),
    async kill() {
      signal('SIGKILL');
      await exited;
      children.delete(child);
    },
    async stop(graceMs = 3000) {
      if (running) {
        signal('SIGCONT');
        signal('SIGTERM');
        const timer = setTimeout(() => signal('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      children.delete(child);
    },
    tail: (n = 30) => lines.slice(-n).join('\n'),
  };
  children.add(child);
  return child;
}

/** Stops every child still running (SIGCONT first, so a frozen one can exit). */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...children].map((child) => child.stop()));
}

/** Starts `apps/<app>/src/server.ts` the way the launcher does. */
export function startApp(
  app: string,
  env: Record<string, string>,
  options: { keepJson?: boolean; nodeArgs?: readonly string[] } = {},
) {
  return spawnChild(
    app,
    process.execPath,
    [
      '--conditions=@gatehouse/source',
      '--import',
      'tsx',
      ...(options.nodeArgs ?? []),
      join('apps', app, 'src', 'server.ts'),
    ],
    {
      env: { ...baseEnv(), ...env },
      keepJson: options.keepJson,
    },
  );
}

/** The environment every app gets: ours minus what would point it at the shared services. */
function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'info', NODE_ENV: 'development' };
  for (const key of ['REDIS_URL', 'REDIS_PREFIX', 'ISSUER', 'API_URL', 'BFF_BASE_URL', 'NODE_OPTIONS']) {
    delete env[key];
  }
  return env;
}

/** Polls `url` until it answers 2xx; fails with the child's last log lines when it exits or times out. */
export async function waitForHttp(child: Child, url: string, timeoutMs = 45_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!child.running) throw new Error(`${child.name} exited while starting:\n${child.tail()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${child.name} did not answer ${url} within ${timeoutMs / 1000} s:\n${child.tail()}`);
}

/** Waits until `predicate` holds for one of the child's parsed log lines. */
export async function waitForLog(
  child: Child,
  predicate: (line: Record<string, unknown>) => boolean,
  timeoutMs = 45_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.json.some(predicate)) return;
    if (!child.running) throw new Error(`${child.name} exited while starting:\n${child.tail()}`);
    await sleep(100);
  }
  throw new Error(`${child.name} never logged what the test waited for:\n${child.tail()}`);
}

/** The redis-server binary, or undefined. */
export function redisServerBinary(): string | undefined {
  const found = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  return found.status === 0 ? 'redis-server' : undefined;
}

/**
 * Decides whether a suite that needs its own redis-server runs (like `requireRedis`): outside CI a
 * missing binary skips it with a loud warning; under `CI=true` it is an error, never a silent skip.
 */
export function requireRedisServer(suite: string): boolean {
  if (redisServerBinary()) return true;
  if (inCI) throw new Error(`redis-server is required for "${suite}" under CI but is not installed`);
  console.warn(
    `\n!!! SKIPPING "${suite}": no redis-server binary on PATH (apt-get install redis-server). CI never skips this.\n`,
  );
  return false;
}

/** A dedicated redis-server on its own port and folder, with AOF so a restart keeps every key. */
export interface RedisProcess {
  readonly url: string;
  readonly port: number;
  readonly child: Child;
  /** SIGKILL (no shutdown save: the AOF, fsynced on every write, is what brings the data back). */
  kill(): Promise<void>;
  /** Starts it again on the same port and folder; resolves when it answers PING. */
  restart(): Promise<void>;
  /** Stops it and deletes its folder. */
  close(): Promise<void>;
}

export async function startRedisServer(port: number): Promise<RedisProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-faults-redis-'));
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'yes',
    '--appendfsync',
    'always',
    '--daemonize',
    'no',
    '--protected-mode',
    'yes',
  ];
  const launch = async () => {
    const child = spawnChild('redis', 'redis-server', args);
    await waitForRedis(child, port);
    return child;
  };
  let child = await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get child() {
      return child;
    },
    kill: () => child.kill(),
    async restart() {
      child = await launch();
    },
    async close() {
      await child.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function waitForRedis(child: Child, port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!child.running) throw new Error(`redis-server exited while starting:\n${child.tail()}`);
    const pong = await new Promise<boolean>((done) => {
      const socket = createConnection({ port, host: '127.0.0.1' });
      socket.setTimeout(500);
      socket.once('connect', () => socket.write('PING\r\n'));
      socket.once('data', (data) => {
        socket.destroy();
        done(data.toString().startsWith('+PONG'));
      });
      socket.once('error', () => done(false));
      socket.once('timeout', () => {
        socket.destroy();
        done(false);
      });
    });
    if (pong) return;
    await sleep(50);
  }
  throw new Error(`redis-server on port ${port} did not answer PING:\n${child.tail()}`);
}

/** A temporary folder for the IdP's keys (and grants, when it persists them). */
export async function tempDir(label: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `gatehouse-faults-${label}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}
