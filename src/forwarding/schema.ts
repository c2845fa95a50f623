/**
 * Forwarding's own tables: its checkpoint in the archive's global order, one delivery per archived
 * event and destination, every attempt made, and each destination's state (paused or not). They are
 * forwarding's record, never the archive's events, and survive restarts.
 */
import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  index,
  integer,
  pgTable,
  text,
  timestamp,
  unique,
  uuid,
} from 'drizzle-orm/pg-core';
import { positionColumn } from '../database/columns.ts';

const at = (name: string) => timestamp(name, { withTimezone: true, precision: 3 });

export const forwardingCheckpoints = pgTable('forwarding_checkpoints', {
  forwarder: text('forwarder').primaryKey(),
  commitPosition: positionColumn('commit_position').notNull(),
  preparePosition: positionColumn('prepare_position').notNull(),
  updatedAt: at('updated_at').notNull(),
});

/**
 * `pending` until delivered (2xx) or `failed` (dead: a final answer, or the last attempt failed);
 * `cancelled` when its destination was removed from the configuration before it was delivered.
 */
export const forwardingDeliveries = pgTable(
  'forwarding_deliveries',
  {
    id: bigserial('id', { mode: 'bigint' }).primaryKey(),
    destination: text('destination').notNull(),
    eventId: uuid('event_id').notNull(),
    streamName: text('stream_name').notNull(),
    streamRevision: bigint('stream_revision', { mode: 'bigint' }).notNull(),
    commitPosition: positionColumn('commit_position').notNull(),
    preparePosition: positionColumn('prepare_position').notNull(),
    eventType: text('event_type').notNull(),
    callId: text('call_id'),
    status: text('status', { enum: ['pending', 'delivered', 'failed', 'cancelled'] }).notNull(),
    /** Attempts made, over every retry round; the next attempt's number is this plus one. */
    attempts: integer('attempts').notNull().default(0),
    /** `attempts` when the current round started (a manual retry starts a new round). */
    roundStart: integer('round_start').notNull().default(0),
    nextAttemptAt: at('next_attempt_at').notNull(),
    recordedAt: at('recorded_at').notNull(),
    finishedAt: at('finished_at'),
    lastStatus: integer('last_status'),
    lastError: text('last_error'),
  },
  (table) => [
    unique('forwarding_deliveries_event_uq').on(table.destination, table.eventId),
    // The head of each call's queue per destination: what the dispatcher looks for.
    index('forwarding_deliveries_pending_idx')
      .on(table.destination, table.streamName, table.commitPosition, table.preparePosition)
      .where(sql`status = 'pending'`),
    index('forwarding_deliveries_due_idx')
      .on(table.commitPosition, table.preparePosition)
      .where(sql`status = 'pending'`),
    index('forwarding_deliveries_call_idx').on(table.callId),
    index('forwarding_deliveries_destination_idx').on(table.destination, table.status, table.recordedAt),
  ],
);

export const forwardingAttempts = pgTable(
  'forwarding_attempts',
  {
    id: bigserial('id', { mode: 'bigint' }).primaryKey(),
    deliveryId: bigint('delivery_id', { mode: 'bigint' }).notNull(),
    attempt: integer('attempt').notNull(),
    destination: text('destination').notNull(),
    attemptedAt: at('attempted_at').notNull(),
    /** The HTTP status; null when none came (timeout, refused, reset). */
    status: integer('status'),
    latencyMs: integer('latency_ms').notNull(),
    error: text('error'),
    /** The first bytes of the response body, as text. */
    response: text('response'),
  },
  (table) => [index('forwarding_attempts_delivery_idx').on(table.deliveryId, table.attempt)],
);

export const forwardingDestinations = pgTable('forwarding_destinations', {
  name: text('name').primaryKey(),
  /** `manual` (paused by an operator, until resumed) or `failing` (paused by the forwarder, probed). */
  pausedReason: text('paused_reason', { enum: ['manual', 'failing'] }),
  pausedAt: at('paused_at'),
  consecutiveFailures: integer('consecutive_failures').notNull().default(0),
  /** When a destination paused as failing is probed next. */
  probeAt: at('probe_at'),
});
