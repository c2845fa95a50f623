/** Column helpers shared by the read-model tables. */
import { numeric } from 'drizzle-orm/pg-core';

/**
 * A global-position half (commit or prepare): unsigned 64-bit, so `numeric(20, 0)` (a Postgres
 * `bigint` is signed) read back as a JS bigint. Never a JS number.
 */
export const positionColumn = (name: string) => numeric(name, { precision: 20, scale: 0, mode: 'bigint' });
