// The sample suite as separate processes on free loopback ports: a dedicated redis-server (AOF), the
// sample IdP, the sample API, one or more sample BFF hosts sharing the Redis sessions, and the sample
// worker. Every part can be frozen, killed and started again on the same port.
import { getRestartablePort } from '@gatehouse/testing';
import {
  type Child,
  type RedisProcess,
  startApp,
  startRedisServer,
  tempDir,
  waitForHttp,
  waitForLog,
} from './processes.js';

/** Session secret of the test BFFs (every instance must share it to read each other's sessions). */
export const FAULTS_SESSION_SECRET = 'faults-suite-session-secret-0123456789-abcdefghij';

/**
 * The sample IdP keeps its grants, sessions and tokens (and its signing keys) in `IDP_DATA_DIR`
 * across a SIGKILL. The scenarios that restart the IdP need it; an IdP without that option ignores
 * the variable (and then forgets every refresh token on restart, which the kill scenario reports as
 * lost sessions).
 */
const idpPersistence = (dataDir: string): Record<string, string> => ({ IDP_DATA_DIR: dataDir });

/** A sample app process that can be restarted on the same port with the same environment. */
export interface AppHandle {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  readonly child: Child;
  /** The environment it was (last) started with. */
  readonly env: Readonly<Record<string, string>>;
  /** Starts the app again (after a kill) with the same env plus `overrides`; resolves when healthy. */
  restart(overrides?: Record<string, string>): Promise<void>;
  stop(): Promise<void>;
}

async function launch(
  app: string,
  url: string,
  port: number,
  env: Record<string, string>,
  health: string | undefined,
  options: { keepJson?: boolean; nodeArgs?: readonly string[] } = {},
): Promise<AppHandle> {
  let currentEnv = env;
  const begin = async () => {
    const child = startApp(app, currentEnv, options);
    if (health) await waitForHttp(child, `${url}${health}`);
    return child;
  };
  let child = await begin();
  return {
    name: app,
    url,
    port,
    get child() {
      return child;
    },
    get env() {
      return currentEnv;
    },
    async restart(overrides = {}) {
      if (child.running) await child.stop();
      currentEnv = { ...currentEnv, ...overrides };
      child = await begin();
    },
    stop: () => child.stop(),
  };
}

export interface IdpSettings {
  /** Port the IdP process listens on. */
  port: number;
  /** Issuer URL (defaults to the IdP's own address; a front's address puts the front in the way). */
  issuer?: string;
  /** Origin the `bff` client's redirect and back-channel URIs point at. */
  bffBaseUrl: string;
  /** ACCESS_TOKEN_TTL, seconds. */
  accessTokenTtl: number;
  /** Keeps signing keys (and, with persistence, grants) across restarts. */
  dataDir: string;
}

export function startIdpProcess(settings: IdpSettings): Promise<AppHandle> {
  const issuer = settings.issuer ?? `http://127.0.0.1:${settings.port}`;
  return launch(
    'idp',
    `http://127.0.0.1:${settings.port}`,
    settings.port,
    {
      IDP_PORT: String(settings.port),
      ISSUER: issuer,
      BFF_BASE_URL: settings.bffBaseUrl,
      ACCESS_TOKEN_TTL: String(settings.accessTokenTtl),
      DATA_DIR: settings.dataDir,
      ...idpPersistence(settings.dataDir),
    },
    '/health',
  );
}

export function startApiProcess(port: number, issuer: string): Promise<AppHandle> {
  return launch(
    'api',
    `http://127.0.0.1:${port}`,
    port,
    { API_PORT: String(port), ISSUER: issuer, LOG_LEVEL: 'warn' },
    '/health',
  );
}

export interface BffSettings {
  port: number;
  /** Public origin (shared by every instance behind one "load balancer"). */
  baseUrl: string;
  issuer: string;
  apiUrl: string;
  /** Redis for the sessions; without it the BFF keeps them in memory. */
  redisUrl?: string;
  redisPrefix?: string;
  /** Extra node flags (the soak's `--inspect` for heap probes). */
  nodeArgs?: readonly string[];
}

export function startBffProcess(settings: BffSettings): Promise<AppHandle> {
  return launch(
    'bff',
    `http://localhost:${settings.port}`,
    settings.port,
    {
      BFF_PORT: String(settings.port),
      BFF_BASE_URL: settings.baseUrl,
      ISSUER: settings.issuer,
      API_URL: settings.apiUrl,
      ...(settings.redisUrl ? { REDIS_URL: settings.redisUrl } : {}),
      ...(settings.redisPrefix ? { REDIS_PREFIX: settings.redisPrefix } : {}),
      SESSION_SECRET: FAULTS_SESSION_SECRET,
      // One line per request at info: 50 req/s of them would only cost CPU here.
      LOG_LEVEL: 'warn',
    },
    '/health',
    { nodeArgs: settings.nodeArgs },
  );
}

export async function startWorkerProcess(settings: {
  issuer: string;
  apiUrl: string;
  redisUrl: string;
  interval: number;
}): Promise<AppHandle> {
  const handle = await launch(
    'worker',
    '',
    0,
    {
      ISSUER: settings.issuer,
      API_URL: settings.apiUrl,
      REDIS_URL: settings.redisUrl,
      REDIS_PREFIX: 'gatehouse-faults:worker:',
      TOKEN_CACHE_SECRET: 'faults-suite-worker-cache-secret-0123456789',
      WORKER_INTERVAL: String(settings.interval),
    },
    undefined,
    { keepJson: true },
  );
  await waitForLog(handle.child, (line) => line.msg === 'GET /api/reports' && line.status === 200);
  return handle;
}

/**
 * Starts again whatever a failed scenario left dead or unresponsive (a process that exited, a BFF or
 * API whose /health does not answer within 3 s), so one failure does not cascade into the next
 * scenario. Returns what it restarted, for the test output.
 */
export async function reviveStack(stack: FaultStack): Promise<string[]> {
  const revived: string[] = [];
  if (!stack.redis.child.running) {
    await stack.redis.restart();
    revived.push('redis');
  }
  for (const handle of [stack.idp, stack.api, ...stack.bffs]) {
    handle.child.thaw();
    let healthy = handle.child.running;
    if (healthy) {
      try {
        const res = await fetch(`${handle.url}/health`, { signal: AbortSignal.timeout(3000) });
        await res.body?.cancel();
        healthy = res.ok;
      } catch {
        healthy = false;
      }
    }
    if (!healthy) {
      if (handle.child.running) await handle.child.kill();
      await handle.restart();
      revived.push(`${handle.name}:${handle.port}`);
    }
  }
  if (stack.worker && !stack.worker.child.running) {
    await stack.worker.restart();
    revived.push('worker');
  }
  return revived;
}

/** The whole suite: Redis, IdP, API, `bffCount` BFF hosts (one origin), the worker. */
export interface FaultStack {
  readonly redis: RedisProcess;
  readonly idp: AppHandle;
  readonly api: AppHandle;
  readonly bffs: readonly AppHandle[];
  readonly worker: AppHandle | undefined;
  /** The IdP's issuer. */
  readonly issuer: string;
  /** The origin users sign in at (the first BFF's). */
  readonly baseUrl: string;
  close(): Promise<void>;
}

export async function startFaultStack(options: {
  accessTokenTtl: number;
  bffCount?: number;
  worker?: boolean;
}): Promise<FaultStack> {
  const dataDir = await tempDir('idp');
  const [redisPort, idpPort, apiPort, ...bffPorts] = await Promise.all(
    Array.from({ length: 3 + (options.bffCount ?? 1) }, () => getRestartablePort()),
  );
  const started: Array<{ stop(): Promise<void> }> = [];
  let redis: RedisProcess | undefined;
  const close = async () => {
    await Promise.all(started.map((s) => s.stop()));
    await redis?.close();
    await dataDir.remove();
  };
  try {
    redis = await startRedisServer(redisPort!);
    const baseUrl = `http://localhost:${bffPorts[0]}`;
    const idp = await startIdpProcess({
      port: idpPort!,
      bffBaseUrl: baseUrl,
      accessTokenTtl: options.accessTokenTtl,
      dataDir: dataDir.path,
    });
    started.push(idp);
    const issuer = `http://127.0.0.1:${idpPort}`;
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const redisUrl = redis.url;
    const track = (handle: AppHandle) => {
      started.push(handle);
      return handle;
    };
    const [api, worker, ...bffs] = await Promise.all([
      startApiProcess(apiPort!, issuer).then(track),
      options.worker === false
        ? Promise.resolve(undefined)
        : startWorkerProcess({ issuer, apiUrl, redisUrl, interval: 0.5 }).then(track),
      ...bffPorts.map((port) =>
        startBffProcess({
          port: port!,
          baseUrl,
          issuer,
          apiUrl,
          redisUrl,
          redisPrefix: 'gatehouse-faults:bff:',
        }).then(track),
      ),
    ]);
    return { redis, idp, api: api!, bffs, worker, issuer, baseUrl, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * The latest warnings and errors each app logged (pino level ≥ 40), deduplicated by message, for a
 * failed scenario's output. The apps never log tokens, secrets or cookies.
 */
export function recentWarnings(handles: ReadonlyArray<AppHandle | undefined>, perApp = 8): string {
  const out: string[] = [];
  for (const handle of handles) {
    if (!handle) continue;
    const seen = new Map<string, number>();
    for (const line of handle.child.lines) {
      if (!line.startsWith('{')) {
        if (line.trim()) seen.set(line.slice(0, 300), (seen.get(line.slice(0, 300)) ?? 0) + 1);
        continue;
      }
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        if (typeof entry.level !== 'number' || entry.level < 40) continue;
        const { level: _l, time: _t, pid: _p, hostname: _h, ...rest } = entry;
        const key = JSON.stringify(rest).slice(0, 300);
        seen.set(key, (seen.get(key) ?? 0) + 1);
      } catch {
        // not pino
      }
    }
    const last = [...seen].slice(-perApp);
    if (last.length > 0) {
      out.push(
        `${handle.name} (port ${handle.port}):`,
        ...last.map(([k, n]) => `  ${n > 1 ? `${n}× ` : ''}${k}`),
      );
    }
  }
  return out.join('\n');
}
