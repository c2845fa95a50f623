import type { Config } from 'drizzle-kit';

// The read-model database. Migrations are generated into `migrations/read-models`, committed, and
// applied at start-up and by `calltrail migrate`.
export default {
  dialect: 'postgresql',
  schema: './src/database/schema.ts',
  out: './migrations/read-models',
} satisfies Config;
