/**
 * Listings of read-model rows keyed by the global position of the event each came from, newest
 * first: the cursor is the position of the last row of the previous page, and one row more than the
 * page is read to tell whether an older page exists.
 */
import { desc, sql, type SQL } from 'drizzle-orm';
import type { PgColumn } from 'drizzle-orm/pg-core';
import { formatPosition, type GlobalPosition } from '../event-store/event-store.ts';

/** A table with the two halves of a global position, as `positionColumn` declares them. */
export interface PositionedTable {
  readonly commitPosition: PgColumn;
  readonly preparePosition: PgColumn;
}

const positionOf = (table: PositionedTable) => sql`(${table.commitPosition}, ${table.preparePosition})`;
const positionValue = (position: GlobalPosition) =>
  sql`(${position.commit.toString()}::numeric, ${position.prepare.toString()}::numeric)`;

/** Rows stored before `position`: the condition for the page after a cursor. */
export const storedBefore = (table: PositionedTable, position: GlobalPosition): SQL =>
  sql`${positionOf(table)} < ${positionValue(position)}`;

/** The row stored at exactly `position`. */
export const storedAt = (table: PositionedTable, position: GlobalPosition): SQL =>
  sql`${positionOf(table)} = ${positionValue(position)}`;

/** Newest first, the order the cursor follows. */
export const newestFirst = (table: PositionedTable): SQL[] => [
  desc(table.commitPosition),
  desc(table.preparePosition),
];

/**
 * The page of `rows` (read with a limit of `limit + 1`) and the cursor of the page after it, or
 * null when this is the last one.
 */
export const positionPage = <Row extends { commitPosition: bigint; preparePosition: bigint }>(
  rows: readonly Row[],
  limit: number,
): { readonly page: Row[]; readonly nextCursor: string | null } => {
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    page,
    nextCursor:
      rows.length > limit && last !== undefined
        ? formatPosition({ commit: last.commitPosition, prepare: last.preparePosition })
        : null,
  };
};
