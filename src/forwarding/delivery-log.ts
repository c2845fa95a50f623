/**
 * The delivery log, read back: deliveries by status, destination, call and time (keyset-paged by
 * delivery id, newest first), one delivery with its attempts, a call's deliveries, and each
 * destination's state with its backlog. Shared by the audit API and `calltrail deliveries`.
 */
import Type from 'typebox';
import { formatPosition } from '../event-store/event-store.ts';
import type { Queryable } from './delivery-store.ts';

const Nullable = <T extends Type.TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const DeliveryStatus = Type.Union([
  Type.Literal('pending'),
  Type.Literal('delivered'),
  Type.Literal('failed'),
  Type.Literal('cancelled'),
]);
export type DeliveryStatus = Type.Static<typeof DeliveryStatus>;

export const DeliveryView = Type.Object({
  id: Type.String({ description: 'The delivery id' }),
  destination: Type.String(),
  eventId: Type.String(),
  eventType: Type.String(),
  stream: Type.String(),
  position: Type.String({ description: "The event's global position" }),
  callId: Nullable(Type.String()),
  status: DeliveryStatus,
  attempts: Type.Integer({ description: 'Attempts made so far' }),
  nextAttemptAt: Nullable(Type.String({ description: 'When the next attempt is due (pending only)' })),
  recordedAt: Type.String(),
  finishedAt: Nullable(Type.String()),
  lastStatus: Nullable(Type.Integer({ description: 'The HTTP status of the last attempt' })),
  lastError: Nullable(Type.String()),
});
export type DeliveryView = Type.Static<typeof DeliveryView>;

export const AttemptView = Type.Object({
  attempt: Type.Integer(),
  attemptedAt: Type.String(),
  status: Nullable(Type.Integer()),
  latencyMs: Type.Integer(),
  error: Nullable(Type.String()),
  response: Nullable(Type.String({ description: 'The first bytes of the response body' })),
});
export type AttemptView = Type.Static<typeof AttemptView>;

export const DestinationView = Type.Object({
  name: Type.String(),
  paused: Nullable(Type.Union([Type.Literal('manual'), Type.Literal('failing')])),
  pausedAt: Nullable(Type.String()),
  consecutiveFailures: Type.Integer(),
  pending: Type.Integer({ description: 'Deliveries not yet delivered nor failed' }),
  failed: Type.Integer(),
  cancelled: Type.Integer({
    description: 'Deliveries cancelled because the destination was removed from the configuration',
  }),
  configured: Type.Boolean({ description: 'Whether the configuration names this destination' }),
  oldestPendingAt: Nullable(Type.String({ description: 'When the oldest pending delivery was recorded' })),
});
export type DestinationView = Type.Static<typeof DestinationView>;

interface DeliveryRow {
  id: string;
  destination: string;
  event_id: string;
  event_type: string;
  stream_name: string;
  commit_position: string;
  prepare_position: string;
  call_id: string | null;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: Date;
  recorded_at: Date;
  finished_at: Date | null;
  last_status: number | null;
  last_error: string | null;
}

const deliveryColumns = `id::text, destination, event_id::text, event_type, stream_name,
  commit_position::text, prepare_position::text, call_id, status, attempts, next_attempt_at,
  recorded_at, finished_at, last_status, last_error`;

const toView = (row: DeliveryRow): DeliveryView => ({
  id: row.id,
  destination: row.destination,
  eventId: row.event_id,
  eventType: row.event_type,
  stream: row.stream_name,
  position: formatPosition({ commit: BigInt(row.commit_position), prepare: BigInt(row.prepare_position) }),
  callId: row.call_id,
  status: row.status,
  attempts: row.attempts,
  nextAttemptAt: row.status === 'pending' ? row.next_attempt_at.toISOString() : null,
  recordedAt: row.recorded_at.toISOString(),
  finishedAt: row.finished_at?.toISOString() ?? null,
  lastStatus: row.last_status,
  lastError: row.last_error,
});

export interface DeliveryFilter {
  readonly status?: DeliveryStatus | undefined;
  readonly destination?: string | undefined;
  readonly callId?: string | undefined;
  /** Recorded at or after. */
  readonly from?: Date | undefined;
  /** Recorded before. */
  readonly to?: Date | undefined;
}

/** Up to `limit` deliveries, newest first, with ids below `before` when given. */
export const listDeliveries = async (
  client: Queryable,
  filter: DeliveryFilter,
  page: { limit: number; before?: string | undefined },
): Promise<DeliveryView[]> => {
  const conditions: string[] = [];
  const values: unknown[] = [];
  const add = (condition: (placeholder: string) => string, value: unknown) => {
    values.push(value);
    conditions.push(condition(`$${values.length}`));
  };
  if (filter.status !== undefined) add((p) => `status = ${p}`, filter.status);
  if (filter.destination !== undefined) add((p) => `destination = ${p}`, filter.destination);
  if (filter.callId !== undefined) add((p) => `call_id = ${p}`, filter.callId);
  if (filter.from !== undefined) add((p) => `recorded_at >= ${p}`, filter.from.toISOString());
  if (filter.to !== undefined) add((p) => `recorded_at < ${p}`, filter.to.toISOString());
  if (page.before !== undefined) add((p) => `id < ${p}::bigint`, page.before);
  values.push(page.limit);
  const { rows } = await client.query<DeliveryRow>(
    `SELECT ${deliveryColumns} FROM forwarding_deliveries
      ${conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : ''}
      ORDER BY id DESC LIMIT $${values.length}`,
    values,
  );
  return rows.map(toView);
};

export const findDelivery = async (
  client: Queryable,
  id: string,
): Promise<{ delivery: DeliveryView; attempts: AttemptView[] } | undefined> => {
  const { rows } = await client.query<DeliveryRow>(
    `SELECT ${deliveryColumns} FROM forwarding_deliveries WHERE id = $1::bigint`,
    [id],
  );
  const row = rows[0];
  if (row === undefined) return undefined;
  const { rows: attempts } = await client.query<{
    attempt: number;
    attempted_at: Date;
    status: number | null;
    latency_ms: number;
    error: string | null;
    response: string | null;
  }>(
    `SELECT attempt, attempted_at, status, latency_ms, error, response FROM forwarding_attempts
      WHERE delivery_id = $1::bigint ORDER BY attempt, id`,
    [id],
  );
  return {
    delivery: toView(row),
    attempts: attempts.map((attempt) => ({
      attempt: attempt.attempt,
      attemptedAt: attempt.attempted_at.toISOString(),
      status: attempt.status,
      latencyMs: attempt.latency_ms,
      error: attempt.error,
      response: attempt.response,
    })),
  };
};

/** A call's deliveries, in archive order, per destination. */
export const deliveriesOfCall = async (client: Queryable, callId: string): Promise<DeliveryView[]> => {
  const { rows } = await client.query<DeliveryRow>(
    `SELECT ${deliveryColumns} FROM forwarding_deliveries WHERE call_id = $1
      ORDER BY commit_position, prepare_position, destination LIMIT 1000`,
    [callId],
  );
  return rows.map(toView);
};

/**
 * Every destination known to the database or the configuration (or only the one named `only`),
 * with its state and backlog.
 */
export const listDestinations = async (
  client: Queryable,
  configured: readonly string[],
  only?: string,
): Promise<DestinationView[]> => {
  const { rows } = await client.query<{
    name: string;
    paused_reason: 'manual' | 'failing' | null;
    paused_at: Date | null;
    consecutive_failures: number | null;
    pending: number;
    failed: number;
    cancelled: number;
    oldest_pending_at: Date | null;
  }>(
    `WITH names AS (SELECT name FROM forwarding_destinations UNION SELECT unnest($1::text[]))
     SELECT n.name, d.paused_reason, d.paused_at, d.consecutive_failures,
            (SELECT count(*)::int FROM forwarding_deliveries p WHERE p.destination = n.name AND p.status = 'pending') AS pending,
            (SELECT count(*)::int FROM forwarding_deliveries f WHERE f.destination = n.name AND f.status = 'failed') AS failed,
            (SELECT count(*)::int FROM forwarding_deliveries c WHERE c.destination = n.name AND c.status = 'cancelled') AS cancelled,
            (SELECT min(recorded_at) FROM forwarding_deliveries o WHERE o.destination = n.name AND o.status = 'pending') AS oldest_pending_at
       FROM names n LEFT JOIN forwarding_destinations d ON d.name = n.name
      WHERE $2::text IS NULL OR n.name = $2
      ORDER BY n.name`,
    [configured, only ?? null],
  );
  return rows.map((row) => ({
    name: row.name,
    paused: row.paused_reason,
    pausedAt: row.paused_at?.toISOString() ?? null,
    consecutiveFailures: row.consecutive_failures ?? 0,
    pending: row.pending,
    failed: row.failed,
    cancelled: row.cancelled,
    configured: configured.includes(row.name),
    oldestPendingAt: row.oldest_pending_at?.toISOString() ?? null,
  }));
};
