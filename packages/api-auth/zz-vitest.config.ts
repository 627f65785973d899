import { defineConfig } from 'vitest/config';
export default defineConfig({
  root: '/work/main',
  resolve: { conditions: ['@gatehouse/source'] },
  ssr: { resolve: { conditions: ['@gatehouse/source'], externalConditions: ['@gatehouse/source'] } },
  test: {
    include: ['packages/api-auth/test/**/*.test.ts', 'apps/api/test/**/*.test.ts'],
    testTimeout: 30000,
  },
});
