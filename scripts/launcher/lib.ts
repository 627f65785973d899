// The launcher's parts, separate from main.ts so tests can use them without starting anything.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { type Env, type LaunchApp, portOf } from './apps.js';

/** Entry point of an app, relative to the repository root. */
export const entryOf = (app: LaunchApp): string => join('apps', app.name, 'src', 'server.ts');

/** The declared apps whose `src/server.ts` exists. */
export function presentApps(root: string, apps: readonly LaunchApp[]): LaunchApp[] {
  return apps.filter((app) => existsSync(join(root, entryOf(app))));
}

/** True when nothing listens on host:port (checked by binding it for a moment). */
export function isPortFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE' || error.code === 'EACCES') resolve(false);
      else if (error.code === 'EADDRNOTAVAIL' || error.code === 'EAFNOSUPPORT') resolve(true);
      else reject(error);
    });
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

export interface TakenPort {
  app: LaunchApp;
  port: number;
  host: string;
}

/** The message for a taken port: names the port, the app, and the env var to change. */
export function portTakenMessage({ app, port, host }: TakenPort): string {
  const suggestion = port + 100 <= 65_535 ? port + 100 : port - 100;
  return [
    `Port ${port} is already in use on ${host}, so the ${app.title} (${app.name}) cannot start.`,
    `  Stop the program using it (find it with: lsof -i :${port}), or pick another port:`,
    `  ${app.portEnv}=${suggestion} npm start`,
  ].join('\n');
}

/** Checks every app's port before anything is spawned; returns the taken ones. */
export async function findTakenPorts(apps: readonly LaunchApp[], env: Env): Promise<TakenPort[]> {
  const taken: TakenPort[] = [];
  for (const app of apps) {
    const port = portOf(app, env);
    if (port === undefined) continue;
    const hosts = app.host === 'localhost' ? ['127.0.0.1', '::1'] : [app.host ?? '127.0.0.1'];
    for (const host of hosts) {
      if (!(await isPortFree(port, host))) {
        taken.push({ app, port, host: app.host ?? host });
        break;
      }
    }
  }
  return taken;
}

export interface Output {
  write(line: string): void;
}

/** `name │ ` in the app's colour, padded so the columns line up. */
export function prefix(app: LaunchApp, width: number, color: boolean): string {
  const label = app.name.padEnd(width);
  return color ? `\u001b[${app.color}m${label} │\u001b[0m ` : `${label} │ `;
}

const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'v']);

/** Makes a pino JSON line readable (`INFO message key=value`); other lines pass through. */
export function prettyLine(line: string): string {
  if (!line.startsWith('{')) return line;
  try {
    const entry = JSON.parse(line) as Record<string, unknown>;
    if (typeof entry.level !== 'number') return line;
    const extras = Object.entries(entry)
      .filter(([k]) => !HIDDEN.has(k))
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    const level = (LEVELS[entry.level] ?? String(entry.level)).padEnd(5);
    return `${level} ${String(entry.msg ?? '')}${extras ? `  ${extras}` : ''}`;
  } catch {
    return line;
  }
}

/** Copies a child's stream line by line, prefixed. */
export function pipeLines(stream: Readable, linePrefix: string, out: Output): void {
  const rl = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  rl.on('line', (line) => out.write(`${linePrefix}${prettyLine(line)}\n`));
}

export interface Running {
  app: LaunchApp;
  child: ChildProcess;
  port: number | undefined;
  /** Resolves with the exit code when the process ends. */
  exited: Promise<number | null>;
}

/** Starts one app's `src/server.ts` with tsx under the workspace's source condition. */
export function startApp(app: LaunchApp, root: string, env: Env, linePrefix: string, out: Output): Running {
  const child = spawn(process.execPath, ['--conditions=@gatehouse/source', '--import', 'tsx', entryOf(app)], {
    cwd: root,
    env: env as NodeJS.ProcessEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  pipeLines(child.stdout!, linePrefix, out);
  pipeLines(child.stderr!, linePrefix, out);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : null)));
    child.once('error', () => resolve(1));
  });
  return { app, child, port: portOf(app, env), exited };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits until the app answers its health URL with 2xx (or, without one, stays up for
 * `settleMs`). Rejects when the process exits first or the deadline passes.
 */
export async function waitUntilReady(
  running: Running,
  options: { timeoutMs?: number; settleMs?: number; fetch?: typeof fetch } = {},
): Promise<void> {
  const { timeoutMs = 30_000, settleMs = 1500, fetch: doFetch = globalThis.fetch } = options;
  const { app, port } = running;
  let exitCode: number | null | undefined;
  void running.exited.then((code) => {
    exitCode = code;
  });
  const deadline = Date.now() + timeoutMs;
  if (!app.healthPath || port === undefined) {
    await Promise.race([sleep(settleMs), running.exited]);
    if (exitCode !== undefined) throw new Error(`${app.name} exited with code ${exitCode} while starting`);
    return;
  }
  const url = `http://${app.host === 'localhost' ? 'localhost' : (app.host ?? '127.0.0.1')}:${port}${app.healthPath}`;
  while (Date.now() < deadline) {
    if (exitCode !== undefined) throw new Error(`${app.name} exited with code ${exitCode} while starting`);
    try {
      const res = await doFetch(url, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    await sleep(200);
  }
  throw new Error(`${app.name} did not answer ${url} within ${Math.round(timeoutMs / 1000)} s`);
}

/** Stops the processes (SIGTERM, then SIGKILL after `graceMs`), last started first. */
export async function stopAll(running: readonly Running[], graceMs = 5000): Promise<void> {
  await Promise.all(
    [...running].reverse().map(async ({ child, exited }) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    }),
  );
}
