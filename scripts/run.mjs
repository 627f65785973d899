#!/usr/bin/env node
// The README's two commands: `npm start` and `npm test`. Both work on a fresh clone with only
// Node.js and npm: they install the workspace with a pinned pnpm first (a no-op when up to date).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const PNPM = ['npx', '--yes', 'pnpm@12.4.2'];

function run(command, args, env = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

function step(title, command, args, env) {
  console.log(`\n\u25b6 ${title}`);
  const status = run(command, args, env);
  if (status !== 0) {
    console.error(`\u2716 ${title} failed (exit ${status})`);
    process.exit(status);
  }
}

const pnpm = (...args) => [PNPM[0], [...PNPM.slice(1), ...args]];
const task = process.argv[2];

step(
  'install dependencies (pnpm, frozen lockfile)',
  ...pnpm('install', '--frozen-lockfile', '--prefer-offline'),
);

if (task === 'start') {
  step('build the sample SPA', ...pnpm('--filter', '@gatehouse/sample-spa', 'build'));
  // Ctrl-C reaches the launcher too (same process group); it stops the apps and exits itself, so this
  // process waits for it instead of returning the prompt before the apps have stopped.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => {});
  const status = run('node', [
    '--conditions=@gatehouse/source',
    '--import',
    'tsx',
    'scripts/launcher/main.ts',
  ]);
  process.exit(status);
} else if (task === 'test') {
  step('lint (biome)', ...pnpm('exec', 'biome', 'check', '.'));
  step('typecheck (tsc)', ...pnpm('run', 'typecheck'));
  step(
    'security requirements: every ID in docs/security.md is cited by a test',
    ...pnpm('run', 'security:coverage', '--check'),
  );
  step(
    'build the sample SPA (served by the browser tests)',
    ...pnpm('--filter', '@gatehouse/sample-spa', 'build'),
  );
  step('unit and integration tests (vitest)', ...pnpm('exec', 'vitest', 'run', '--project', 'unit'));
  step(
    'fault injection (IdP, Redis, API, BFF and worker as processes, frozen and killed under load)',
    ...pnpm('exec', 'vitest', 'run', '--project', 'faults'),
  );
  step(
    'browser tests (vitest + playwright-core + Chromium)',
    ...pnpm('exec', 'vitest', 'run', '--project', 'e2e'),
  );
  console.log('\n\u2714 all checks passed');
} else {
  console.error('usage: node scripts/run.mjs start|test');
  process.exit(2);
}
