import { defineConfig } from 'vitest/config';

/**
 * Shared vitest settings: tests run against each package's TypeScript sources through the
 * `@secure-memory/source` export condition, so no build is needed for in-process tests.
 * Child processes started by the testkit load the built `dist/` (nx builds it first).
 */
export default defineConfig({
  resolve: { conditions: ['@secure-memory/source', 'import', 'node', 'default'] },
  ssr: { resolve: { conditions: ['@secure-memory/source', 'import', 'node', 'default'] } },
  test: {
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    // Time limits only catch hangs: a busy 2-core machine must never fail a test by its clock.
    testTimeout: 900_000,
    hookTimeout: 900_000,
    reporters: ['default', ['json', { outputFile: 'test-results.json' }]],
  },
});
