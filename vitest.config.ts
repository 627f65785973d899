import { defineConfig } from 'vitest/config';

// Workspace packages export their TypeScript sources under this condition, so tests run
// against `src/` without a build step. The rest are Vite's defaults for server code; 'import' must
// not be listed: vitest hands these to Node for external packages, and `require()` inside a CommonJS
// dependency (Express's router) would then load ESM files.
const conditions = ['@gatehouse/source', 'module', 'node', 'development|production'];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ['@gatehouse/source'] } },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['packages/*/test/**/*.test.ts', 'apps/*/test/**/*.test.ts', 'scripts/test/**/*.test.ts'],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        // Real processes (IdP, Redis, API, BFF hosts, worker) frozen and killed under load: one file at
        // a time, since every file starts its own set of processes and the faults are timed.
        extends: true,
        test: {
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.spec.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
