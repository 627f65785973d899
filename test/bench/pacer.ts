// A steady pacer: sends requests at fixed intervals (not in bursts, as autocannon's rate option does)
// and reports each request's latency measured from its scheduled start, so a stall is not hidden by the
// pacer waiting for it (no coordinated omission). Run as a child process by harness.ts:
//   node --import tsx test/bench/pacer.ts '{"url":…,"headers":{…},"rate":300,"seconds":3}'
// Prints one JSON line: { sent, failed, p50Ms, p99Ms, p50SentMs, p99SentMs, maxLateMs }. The *SentMs
// figures count from the moment each request actually left instead: they leave out how late this
// process's own timer fired (on a busy machine that lateness is most of the scheduled-start tail).
import { Agent, request } from 'node:http';

interface PacerInput {
  url: string;
  headers?: Record<string, string>;
  rate: number;
  seconds: number;
  /** Seconds of paced warm-up whose latencies are discarded. Default 0.5. */
  warmUp?: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

async function run(input: PacerInput): Promise<void> {
  const url = new URL(input.url);
  // Enough keep-alive sockets that a request never waits for a free one at this rate.
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const interval = 1000 / input.rate;
  const warmUp = Math.round((input.warmUp ?? 0.5) * input.rate);
  const total = warmUp + Math.round(input.seconds * input.rate);
  const latencies: number[] = [];
  const fromSent: number[] = [];
  let failed = 0;
  let done = 0;
  let maxLate = 0;
  const t0 = performance.now() + 20;

  await new Promise<void>((resolve) => {
    const fire = (index: number, scheduled: number) => {
      const sentAt = performance.now();
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: `${url.pathname}${url.search}`,
          headers: input.headers,
          agent,
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode !== 200) failed += 1;
            else if (index >= warmUp) {
              const now = performance.now();
              latencies.push(now - scheduled);
              fromSent.push(now - sentAt);
            }
            if (++done === total) resolve();
          });
        },
      );
      req.on('error', () => {
        failed += 1;
        if (++done === total) resolve();
      });
      req.end();
    };
    let next = 0;
    const tick = () => {
      const now = performance.now();
      // Send every request whose time has come, each stamped with its own scheduled time.
      while (next < total && t0 + next * interval <= now) {
        const scheduled = t0 + next * interval;
        maxLate = Math.max(maxLate, now - scheduled);
        fire(next, scheduled);
        next += 1;
      }
      if (next < total) setTimeout(tick, Math.max(0, t0 + next * interval - performance.now()));
    };
    setTimeout(tick, 20);
  });
  agent.destroy();
  latencies.sort((a, b) => a - b);
  fromSent.sort((a, b) => a - b);
  process.stdout.write(
    `${JSON.stringify({
      sent: total,
      failed,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      p50SentMs: percentile(fromSent, 50),
      p99SentMs: percentile(fromSent, 99),
      maxLateMs: maxLate,
    })}\n`,
  );
}

await run(JSON.parse(process.argv[2] ?? '{}') as PacerInput);
