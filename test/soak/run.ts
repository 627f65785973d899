// Soak: `npm run soak`. Starts the sample IdP (4 s access tokens), API and BFF host as real processes
// (Redis sessions in a dedicated redis-server when the binary is there), then SOAK_USERS virtual
// users sign in, call the API several times a second (so their tokens are refreshed every couple of
// seconds), add and delete todos, sign out and in again, for SOAK_MINUTES. Every 10 s the BFF's
// memory is sampled through the Node inspector (a full GC first, so the heap figure is what is live).
// Prints a table; exits 1 when the heap after warm-up grew more than 10 %, any session was lost, or
// any call failed (nothing is injected, so every call must succeed).
//
//   SOAK_USERS=20 SOAK_MINUTES=10 npm run soak
//
// To see what grows: SOAK_HEAP_SNAPSHOTS=<dir> also writes a heap snapshot of the BFF right after the
// baseline sample (baseline.heapsnapshot) and after the last one (end.heapsnapshot); each pauses the
// BFF for a second or two. Compare them with
//
//   node --import tsx test/soak/heap-diff.ts <dir>/baseline.heapsnapshot <dir>/end.heapsnapshot
//
// (the classes that grew most, and how the objects born in between are held; see its header).
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { getRestartablePort } from '@gatehouse/testing';
import WebSocket from 'ws';
import { call, type Sample, signIn, type VirtualUser } from '../faults/support/load.js';
import {
  type RedisProcess,
  redisServerBinary,
  startRedisServer,
  stopAllChildren,
  tempDir,
} from '../faults/support/processes.js';
import {
  type AppHandle,
  startApiProcess,
  startBffProcess,
  startIdpProcess,
} from '../faults/support/stack.js';

function envNumber(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min) {
    throw new TypeError(`${name} must be a number ≥ ${min}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

const USERS = Math.round(envNumber('SOAK_USERS', 20, 1));
const MINUTES = envNumber('SOAK_MINUTES', 10, 0.5);
/** Seconds between memory samples. */
const SAMPLE_EVERY = envNumber('SOAK_SAMPLE_SECONDS', 10, 1);
/** Heap growth after warm-up that fails the run. */
const MAX_GROWTH = 0.1;
const TTL = 4;
const DURATION_MS = MINUTES * 60_000;
/** The first minute (a third of a short run) warms up JIT, pools and caches; the baseline is taken after it. */
const WARMUP_MS = Math.min(60_000, DURATION_MS / 3);
/** Where the BFF's heap snapshots go (opt-in). */
const SNAPSHOT_DIR = process.env.SOAK_HEAP_SNAPSHOTS || undefined;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));
const rand = (min: number, max: number) => min + Math.random() * (max - min);

/** A minimal Chrome DevTools Protocol client for one process's inspector. */
async function connectInspector(port: number) {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{
    webSocketDebuggerUrl: string;
  }>;
  const ws = new WebSocket(targets[0]!.webSocketDebuggerUrl);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let nextId = 1;
  const pending = new Map<number, (message: { result?: unknown; error?: { message: string } }) => void>();
  /** Receives the chunks of the heap snapshot being taken. */
  let onChunk: ((chunk: string) => void) | undefined;
  ws.on('message', (data) => {
    const message = JSON.parse(String(data)) as {
      id?: number;
      method?: string;
      params?: { chunk?: string };
      result?: unknown;
      error?: { message: string };
    };
    if (message.id !== undefined) pending.get(message.id)?.(message);
    else if (message.method === 'HeapProfiler.addHeapSnapshotChunk') onChunk?.(message.params?.chunk ?? '');
  });
  const send = (method: string, params: object = {}) =>
    new Promise<unknown>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, (message) => {
        pending.delete(id);
        if (message.error) reject(new Error(`${method}: ${message.error.message}`));
        else resolve(message.result);
      });
      ws.send(JSON.stringify({ id, method, params }));
    });
  return {
    /** Full GC, then `process.memoryUsage()` of the inspected process. */
    async memory(): Promise<NodeJS.MemoryUsage> {
      await send('HeapProfiler.collectGarbage');
      const answer = (await send('Runtime.evaluate', {
        expression: 'JSON.stringify(process.memoryUsage())',
        returnByValue: true,
      })) as { result: { value: string } };
      return JSON.parse(answer.result.value) as NodeJS.MemoryUsage;
    },
    /** Writes a heap snapshot of the inspected process to `path` (V8 collects garbage first). */
    async snapshot(path: string): Promise<void> {
      const file = createWriteStream(path);
      onChunk = (chunk) => file.write(chunk);
      try {
        await send('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
      } finally {
        onChunk = undefined;
        await new Promise<void>((resolve, reject) =>
          file.end((error?: Error | null) => (error ? reject(error) : resolve())),
        );
      }
    },
    close: () => ws.close(),
  };
}

/** What the virtual users did since the last sample. */
interface Tally {
  requests: number;
  ok: number;
  s401: number;
  s5xx: number;
  other: number;
  signIns: number;
  signOuts: number;
}
const emptyTally = (): Tally => ({ requests: 0, ok: 0, s401: 0, s5xx: 0, other: 0, signIns: 0, signOuts: 0 });

async function main(): Promise<number> {
  const useRedis = redisServerBinary() !== undefined;
  const [redisPort, idpPort, apiPort, bffPort, inspectPort] = await Promise.all(
    Array.from({ length: 5 }, () => getRestartablePort()),
  );
  const dataDir = await tempDir('soak-idp');
  const apps: AppHandle[] = [];
  let redis: RedisProcess | undefined;
  const lost: string[] = [];
  try {
    if (useRedis) redis = await startRedisServer(redisPort!);
    const origin = `http://localhost:${bffPort}`;
    const issuer = `http://127.0.0.1:${idpPort}`;
    apps.push(
      await startIdpProcess({
        port: idpPort!,
        bffBaseUrl: origin,
        accessTokenTtl: TTL,
        dataDir: dataDir.path,
      }),
    );
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const [api, bff] = await Promise.all([
      startApiProcess(apiPort!, issuer),
      startBffProcess({
        port: bffPort!,
        baseUrl: origin,
        issuer,
        apiUrl,
        redisUrl: redis?.url,
        redisPrefix: 'gatehouse-soak:bff:',
        nodeArgs: [`--inspect=127.0.0.1:${inspectPort}`],
      }),
    ]);
    apps.push(api, bff);
    const inspector = await connectInspector(inspectPort!);
    console.log(
      `soak: ${USERS} virtual users for ${MINUTES} min against one BFF (pid ${bff.child.process.pid}, sessions in ${useRedis ? 'a dedicated redis-server' : 'memory: no redis-server binary'}), access tokens of ${TTL} s; memory every ${SAMPLE_EVERY} s after a full GC, baseline after ${Math.round(WARMUP_MS / 1000)} s`,
    );

    // The clock starts when the users do (starting the processes takes a while on a busy machine).
    const started = Date.now();
    let tally = emptyTally();
    const total = emptyTally();
    const count = (sample: Sample) => {
      for (const t of [tally, total]) {
        t.requests++;
        if (sample.status >= 200 && sample.status < 300) t.ok++;
        else if (sample.status === 401) t.s401++;
        else if (sample.status >= 500) t.s5xx++;
        else t.other++;
      }
    };
    const deadline = started + DURATION_MS;
    let signedIn = 0;

    // One virtual user: sign in, work for 15–45 s, sign out (at the BFF and the IdP), repeat.
    const virtualUser = async (index: number) => {
      const username = index % 2 === 0 ? 'alice' : 'bob';
      await sleep(rand(0, 3000));
      while (Date.now() < deadline) {
        let user: VirtualUser;
        try {
          user = await signIn(`vu${index}`, username, [origin]);
        } catch (error) {
          lost.push(`vu${index}: sign-in failed: ${(error as Error).message}`);
          await sleep(1000);
          continue;
        }
        tally.signIns++;
        total.signIns++;
        signedIn++;
        const workUntil = Math.min(deadline, Date.now() + rand(15_000, 45_000));
        let calls = 0;
        while (Date.now() < workUntil) {
          const sample = await call(user, origin, '/api/todos', { timeoutMs: 15_000 });
          count(sample);
          if (sample.status === 401) lost.push(`vu${index}: GET /api/todos → 401 ${sample.code ?? ''}`);
          if (++calls % 20 === 0) {
            // A write now and then: a body through the proxy both ways, and nothing piles up in the API.
            const res = await user.browser.fetch(`${origin}/api/todos`, {
              method: 'POST',
              json: { title: `soak ${calls}` },
              headers: { 'x-csrf': '1' },
              initiator: `${origin}/`,
            });
            const todo = (await res.json().catch(() => undefined)) as { id?: string } | undefined;
            count({ ...sample, status: res.status });
            if (res.status === 401) lost.push(`vu${index}: POST /api/todos → 401`);
            if (todo?.id) {
              const del = await user.browser.fetch(`${origin}/api/todos/${todo.id}`, {
                method: 'DELETE',
                headers: { 'x-csrf': '1' },
                initiator: `${origin}/`,
              });
              await del.body?.cancel();
              count({ ...sample, status: del.status });
            }
          }
          await sleep(rand(200, 600));
        }
        // Sign out: POST /bff/logout, then through the IdP's end-session page back to the BFF.
        const logout = await user.browser.fetch(`${origin}/bff/logout`, {
          method: 'POST',
          headers: { 'x-csrf': '1' },
          initiator: `${origin}/`,
        });
        await logout.body?.cancel();
        const location = logout.headers.get('location');
        if (logout.status !== 302 || !location) {
          lost.push(`vu${index}: logout → ${logout.status}`);
        } else {
          const end = await user.browser
            .follow(new URL(location, origin), { initiator: `${origin}/` })
            .catch((error: unknown) => ({ url: `(failed: ${(error as Error).message})`, status: 0 }));
          if (new URL(end.url, origin).origin !== origin) {
            lost.push(`vu${index}: sign-out ended at ${end.status} ${end.url.split('?')[0]}`);
          }
          // The old cookie must be dead now (O6): a sign-out that left the session would be a bug too.
          const after = await call(user, origin, '/bff/user', { cookie: user.cookie, timeoutMs: 15_000 });
          if (after.status !== 401) lost.push(`vu${index}: GET /bff/user after sign-out → ${after.status}`);
        }
        signedIn--;
        tally.signOuts++;
        total.signOuts++;
      }
    };

    const header =
      '  t(s) | rss MB | heap MB | users in | requests |    2xx |  401 |  5xx | other | sign-ins | sign-outs';
    console.log(header);
    console.log(header.replace(/[^|]/g, '-').replace(/\|/g, '+'));
    const heaps: Array<{ t: number; heap: number }> = [];
    if (SNAPSHOT_DIR) await mkdir(SNAPSHOT_DIR, { recursive: true });
    let baselineSnapshot = false;
    const sampler = (async () => {
      for (let next = started + SAMPLE_EVERY * 1000; next <= deadline + 1; next += SAMPLE_EVERY * 1000) {
        await sleep(next - Date.now());
        const mem = await inspector.memory();
        const t = Math.round((Date.now() - started) / 1000);
        heaps.push({ t: Date.now() - started, heap: mem.heapUsed });
        const row = tally;
        tally = emptyTally();
        console.log(
          [
            String(t).padStart(6),
            (mem.rss / 2 ** 20).toFixed(1).padStart(6),
            (mem.heapUsed / 2 ** 20).toFixed(1).padStart(7),
            String(signedIn).padStart(8),
            String(row.requests).padStart(8),
            String(row.ok).padStart(6),
            String(row.s401).padStart(4),
            String(row.s5xx).padStart(4),
            String(row.other).padStart(5),
            String(row.signIns).padStart(8),
            String(row.signOuts).padStart(9),
          ].join(' | '),
        );
        if (SNAPSHOT_DIR && !baselineSnapshot && Date.now() - started >= WARMUP_MS) {
          baselineSnapshot = true;
          await inspector.snapshot(join(SNAPSHOT_DIR, 'baseline.heapsnapshot'));
        }
      }
    })();
    await Promise.all([...Array.from({ length: USERS }, (_, i) => virtualUser(i)), sampler]);
    if (SNAPSHOT_DIR) {
      await inspector.snapshot(join(SNAPSHOT_DIR, 'end.heapsnapshot'));
      console.log(
        `heap snapshots: ${join(SNAPSHOT_DIR, 'baseline.heapsnapshot')}, ${join(SNAPSHOT_DIR, 'end.heapsnapshot')}`,
      );
    }
    inspector.close();

    // Baseline: the first sample after warm-up. End: the lowest of the last three (after a full GC
    // each, so a leak raises the floor; one sample taken mid-burst does not fail the run).
    const afterWarmup = heaps.filter((h) => h.t >= WARMUP_MS);
    const baseline = afterWarmup[0];
    const tail = afterWarmup.slice(1).slice(-3);
    const problems: string[] = [];
    let growthText = 'n/a (too few samples after warm-up)';
    if (baseline && tail.length > 0) {
      const end = Math.min(...tail.map((h) => h.heap));
      const growth = (end - baseline.heap) / baseline.heap;
      growthText = `${(baseline.heap / 2 ** 20).toFixed(1)} MB at ${Math.round(baseline.t / 1000)} s → ${(end / 2 ** 20).toFixed(1)} MB at the end (${growth >= 0 ? '+' : ''}${(growth * 100).toFixed(1)} %)`;
      if (growth > MAX_GROWTH)
        problems.push(`heap grew ${(growth * 100).toFixed(1)} % after warm-up (limit 10 %)`);
    } else {
      problems.push('too few memory samples after warm-up to judge the heap (run longer)');
    }
    if (lost.length > 0)
      problems.push(`${lost.length} lost sessions or failed sign-ins/outs: ${lost.slice(0, 10).join('; ')}`);
    // Nothing is injected here, so a call that does not succeed is a defect too (a session stuck on
    // 5xx would never show up as a 401).
    if (total.s5xx + total.other > 0)
      problems.push(
        `${total.s5xx} calls answered 5xx and ${total.other} something else (no fault was injected)`,
      );
    console.log(
      `\ntotal: ${total.requests} requests (2xx ${total.ok}, 401 ${total.s401}, 5xx ${total.s5xx}, other ${total.other}), ` +
        `${total.signIns} sign-ins, ${total.signOuts} sign-outs in ${((Date.now() - started) / 1000).toFixed(0)} s`,
    );
    console.log(`heap after warm-up: ${growthText}`);
    if (problems.length > 0) {
      console.error(`\n✖ soak failed:\n  - ${problems.join('\n  - ')}`);
      return 1;
    }
    console.log('\n✔ soak passed: no session lost, no call failed, heap within 10 % after warm-up');
    return 0;
  } finally {
    await Promise.all(apps.map((app) => app.stop()));
    await stopAllChildren();
    await redis?.close();
    await dataDir.remove();
  }
}

// Ctrl-C, a crash or an early exit: ../faults/support/processes.ts kills every app it started.
main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`soak: ${(error as Error).stack ?? error}`);
    void stopAllChildren().finally(() => process.exit(1));
  },
);
