import { defineConfig } from 'vitest/config';

// Tiers by suffix: `.unit.spec.ts` (pure), `.int.spec.ts` (real Postgres and/or the EventStoreDB
// test server), `.e2e.spec.ts` (the calltrail process or HTTP stack end to end). All run by `npm test`.
export default defineConfig({
  test: {
    include: ['test/**/*.spec.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
