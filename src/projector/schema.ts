/**
 * The projector's own bookkeeping tables: one checkpoint per projection, written in the same
 * transaction as the read-model changes it covers, and the dead letters it skipped.
 */
import { bigint, bigserial, pgTable, text, timestamp, unique, uuid } from 'drizzle-orm/pg-core';
import { positionColumn } from '../database/columns.ts';

export const projectionCheckpoints = pgTable('projection_checkpoints', {
  projection: text('projection').primaryKey(),
  commitPosition: positionColumn('commit_position').notNull(),
  preparePosition: positionColumn('prepare_position').notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true, precision: 3 }).notNull(),
});

export const projectionDeadLetters = pgTable(
  'projection_dead_letters',
  {
    id: bigserial('id', { mode: 'bigint' }).primaryKey(),
    projection: text('projection').notNull(),
    eventId: uuid('event_id').notNull(),
    streamName: text('stream_name').notNull(),
    streamRevision: bigint('stream_revision', { mode: 'bigint' }).notNull(),
    commitPosition: positionColumn('commit_position').notNull(),
    preparePosition: positionColumn('prepare_position').notNull(),
    eventType: text('event_type').notNull(),
    error: text('error').notNull(),
    recordedAt: timestamp('recorded_at', { withTimezone: true, precision: 3 }).notNull(),
  },
  (table) => [unique('projection_dead_letters_event_uq').on(table.projection, table.eventId)],
);
