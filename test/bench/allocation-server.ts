// The server under test of the allocation benchmark (allocations.ts), one case per process so no other
// code's garbage is counted. Started with a young generation large enough that no collection runs while
// a window is measured: the heap then only grows, and its growth is what the window allocated (checked:
// every window reports how many collections ran in it, and allocations.ts refuses a window with any).
//
// Messages from the parent (IPC): `start` / `stop` bracket a window of HTTP calls the parent sends;
// `session-reads` measures the session step alone (sessions.load, the BFF cases only); `close` ends.
// With `profileDir`, each window also takes a sampling heap profile (every allocation counted, also the
// ones a later collection frees), writes it there as a .heapprofile and reports its top allocation sites.
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import { createBff, createMemoryStore, createRedisStore, type SessionStore } from '@gatehouse/bff';
import express from 'express';
import { createClient } from 'redis';
// The session step alone is internal, hence the relative imports.
import { resolveConfig } from '../../packages/bff/src/lib/config.js';
import { silentLogger } from '../../packages/bff/src/lib/logger.js';
import { createProxyEngine, resolveRemoteApis } from '../../packages/bff/src/lib/proxy/index.js';
import { createSessions } from '../../packages/bff/src/lib/session/sessions.js';
import { guardStore } from '../../packages/bff/src/lib/store/guard.js';
import { collectGarbage } from './harness.js';
import { type Listening, listen, startBareNodeProxy, startBareUndiciProxy } from './servers.js';

export type AllocationCase = 'bare-node' | 'bare-undici' | 'engine-only' | 'bff-memory' | 'bff-redis';

export interface ServerInput {
  kind: AllocationCase;
  upstream: string;
  issuer?: string;
  port?: number;
  redisPrefix?: string;
  profileDir?: string;
}

/** What one measured window allocated. */
export interface WindowResult {
  /** Bytes the V8 heap grew by (no collection ran, so: bytes allocated on the JS heap). */
  heapBytes: number;
  /** Kinds of the collections that ran during the window (must be none for the figures to mean anything). */
  collections: number[];
  /** CPU time this process spent in the window (µs), for quick comparisons outside the benchmark. */
  cpuMicros: number;
  /** Top allocation sites of the sampling profile, bytes over the whole window. */
  sites?: Array<{ site: string; bytes: number }>;
}

export type ParentMessage =
  | { op: 'start'; label: string }
  | { op: 'stop' }
  | { op: 'session-reads'; cookie: string; warm: number; calls: number; concurrency: number }
  | { op: 'close' };

export type ChildMessage =
  | { op: 'ready'; url: string }
  | { op: 'started' }
  | { op: 'result'; result: WindowResult }
  | { op: 'closed' };

const input = JSON.parse(process.argv[2] ?? '{}') as ServerInput;
const send = (message: ChildMessage) => process.send?.(message);

// When each collection started: entries arrive asynchronously, so a window counts them by time.
const collections: Array<{ at: number; kind: number }> = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries() as Array<PerformanceEntry & { detail?: { kind?: number } }>)
    collections.push({ at: entry.startTime, kind: entry.detail?.kind ?? 0 });
}).observe({ entryTypes: ['gc'] });
/** Kinds (perf_hooks constants: 1 minor, 4 major, 8 incremental, 16 weak callbacks) of the collections in [from, to]. */
const collectionsBetween = (from: number, to: number) =>
  collections.filter((gc) => gc.at >= from && gc.at <= to).map((gc) => gc.kind);

const heapUsed = () => {
  let used = 0;
  for (const space of getHeapSpaceStatistics()) used += space.space_used_size;
  return used;
};

// --- the measured window -------------------------------------------------------------------------
const inspector = input.profileDir ? new Session() : undefined;
inspector?.connect();
let window: { heap: number; at: number; cpu: NodeJS.CpuUsage; label: string } | undefined;

async function startWindow(label: string): Promise<void> {
  collectGarbage();
  if (inspector) {
    await inspector.post('HeapProfiler.startSampling', {
      samplingInterval: 256,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
  }
  window = {
    heap: heapUsed(),
    at: performance.now(),
    cpu: process.cpuUsage(),
    label,
  };
}

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

async function stopWindow(): Promise<WindowResult> {
  const heap = heapUsed();
  const at = performance.now();
  const cpu = process.cpuUsage(window?.cpu);
  const started = window;
  if (!started) throw new Error('stop without start');
  let sites: WindowResult['sites'];
  if (inspector && input.profileDir) {
    const { profile } = (await inspector.post('HeapProfiler.stopSampling')) as {
      profile: { head: ProfileNode };
    };
    writeFileSync(
      join(input.profileDir, `${input.kind}-${started.label}.heapprofile`),
      JSON.stringify(profile),
    );
    sites = topSites(profile.head);
  }
  // Entries of collections that ran up to now are delivered asynchronously.
  await new Promise((resolve) => setTimeout(resolve, 20));
  return {
    heapBytes: heap - started.heap,
    collections: collectionsBetween(started.at, at),
    cpuMicros: cpu.user + cpu.system,
    ...(sites ? { sites } : {}),
  };
}

/** Self size per allocation site (function and line), largest first. */
function topSites(head: ProfileNode): Array<{ site: string; bytes: number }> {
  const bySite = new Map<string, number>();
  const walk = (node: ProfileNode) => {
    if (node.selfSize > 0) {
      const { functionName, url, lineNumber } = node.callFrame;
      const file = url.replace(/^.*\/(node_modules|packages|test)\//, '$1/');
      const site = `${functionName || '(anonymous)'} ${file || '(native)'}:${lineNumber + 1}`;
      bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
    }
    for (const child of node.children) walk(child);
  };
  walk(head);
  return [...bySite]
    .map(([site, bytes]) => ({ site, bytes }))
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, 25);
}

// --- the server under test -----------------------------------------------------------------------
const bffRemoteApis = (upstream: string) => [
  {
    prefix: '/api',
    upstream: `${upstream}/api`,
    // The bucket is still taken on every call (its cost is counted), just never empty here.
    rateLimit: { burst: 1_000_000_000, perSecond: 1_000_000_000 },
  },
];

let closeServer: () => Promise<void> = async () => {};
let loadSession: ((cookie: string) => Promise<unknown>) | undefined;

async function startServer(): Promise<Listening> {
  switch (input.kind) {
    case 'bare-node':
      return startBareNodeProxy(input.upstream);
    case 'bare-undici':
      return startBareUndiciProxy(input.upstream);
    case 'engine-only': {
      const engine = createProxyEngine({
        routes: resolveRemoteApis([{ prefix: '/api', upstream: `${input.upstream}/api` }]),
        publicOrigin: 'http://127.0.0.1',
        logger: silentLogger,
        tokens: {
          loadSession: async () => ({ id: 'bench' }),
          getUserToken: async () => 'fixed-token',
          getClientToken: async () => 'fixed-token',
        },
      });
      const server = await listen(
        createServer((req, res) => engine.handle(req, res, () => res.writeHead(404).end())),
      );
      return {
        ...server,
        close: async () => {
          engine.close();
          await server.close();
        },
      };
    }
    case 'bff-memory':
    case 'bff-redis':
      return startBff();
  }
}

async function startBff(): Promise<Listening> {
  const baseUrl = `http://127.0.0.1:${input.port}`;
  let store: SessionStore;
  let cleanUp = async () => {};
  if (input.kind === 'bff-redis') {
    // A plain client, not @gatehouse/testing's: that package would load the sample IdP's modules here.
    const client = createClient({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' });
    client.on('error', () => {});
    await client.connect();
    const prefix = input.redisPrefix ?? 'gatehouse-bench:alloc:';
    store = createRedisStore({ client, prefix });
    cleanUp = async () => {
      for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 }))
        if (keys.length > 0) await client.del(keys);
      await client.close();
    };
  } else {
    store = createMemoryStore();
  }
  const options = {
    issuer: input.issuer ?? '',
    clientId: input.kind === 'bff-redis' ? 'bff-redis' : 'bff',
    clientSecret: 'bff-secret',
    baseUrl,
    sessionSecret: 'allocation-bench-session-secret-0123456789abcdef',
    apiScopes: ['api'],
    store,
    remoteApis: bffRemoteApis(input.upstream),
  };
  const bff = createBff(options);
  // The session step exactly as the BFF builds it (same options, same guarded store): one session read.
  const sessions = createSessions(resolveConfig(options), guardStore(store), silentLogger, Date.now);
  loadSession = (cookie) => sessions.load(cookie);
  const app = express();
  app.use(bff.router);
  const server = await listen(
    createServer((req, res) => {
      if (!bff.handleRequest(req, res)) app(req, res);
    }),
    input.port,
  );
  closeServer = async () => {
    await server.close();
    await bff.close();
    await cleanUp();
  };
  return server;
}

/**
 * `calls` session reads, `concurrency` at a time, alternating between two Cookie headers that name the
 * same session: every read parses its header, as the first read of each proxied call does (a repeat of
 * the very same header would be answered from the session step's one-entry memo).
 */
async function readSessions(
  cookies: readonly [string, string],
  calls: number,
  concurrency: number,
): Promise<void> {
  const load = loadSession;
  if (!load) throw new Error('session reads need a BFF case');
  let left = calls;
  const worker = async () => {
    while (left-- > 0) {
      if ((await load(cookies[left & 1] as string)) === undefined)
        throw new Error('session read found no session');
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

const server = await startServer();
if (input.kind === 'bare-node' || input.kind === 'bare-undici' || input.kind === 'engine-only')
  closeServer = server.close;
process.on('message', (message: ParentMessage) => {
  void (async () => {
    switch (message.op) {
      case 'start':
        await startWindow(message.label);
        send({ op: 'started' });
        return;
      case 'stop':
        send({ op: 'result', result: await stopWindow() });
        return;
      case 'session-reads': {
        const cookies = [message.cookie, `${message.cookie}; other=1`] as const;
        await readSessions(cookies, message.warm, message.concurrency);
        await startWindow('session-reads');
        await readSessions(cookies, message.calls, message.concurrency);
        send({ op: 'result', result: await stopWindow() });
        return;
      }
      case 'close':
        await closeServer();
        send({ op: 'closed' });
        process.disconnect();
    }
  })();
});
send({ op: 'ready', url: server.url });
