// Runs every benchmark suite in this folder, one after another, so they never compete for the CPU.
// `npm run bench` (BENCH_SECONDS sets each measurement's duration; BENCH_ONLY=name picks one suite).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const suites = ['api-auth', 'token-manager', 'session-cookie', 'proxy', 'allocations'];
const only = process.env.BENCH_ONLY;

for (const suite of suites) {
  if (only && only !== suite) continue;
  const file = join(here, `${suite}.ts`);
  if (!existsSync(file)) {
    console.warn(`(bench suite ${suite} not present)`);
    continue;
  }
  const module = (await import(pathToFileURL(file).href)) as { main: () => Promise<void> };
  await module.main();
}
