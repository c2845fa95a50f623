/**
 * Read model `calls`: one row per call session, its current state decided by event time.
 *
 * Flireo does not order its deliveries, so a call's events reach the store in any order. The fold
 * therefore never trusts arrival: every field is a register that keeps the value of the event with
 * the latest event time (events without one rank lowest; equal times go to the greater value), or
 * a min/max over event times. Registers are joins, so the result depends only on the set of events
 * applied, whatever their order and batch boundaries; the revision guard (`lastRevision`) makes a
 * redelivered event change nothing. The registers live in `fold_state`, because a later batch needs
 * to know the time behind each value; they are kept small, since every batch rewrites them.
 */
import { sql } from 'drizzle-orm';
import { bigint, doublePrecision, index, integer, json, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import type { CallStatus } from '../../src/archive/archived-event.ts';
import { positionColumn } from '../../src/database/columns.ts';
import type { CallEvent } from '../../src/archive/call-event.ts';

/** A value and the event time it was seen at. */
export type Register<T extends string | number> = readonly [at: string | null, value: T];

/** The event that decides the status: its time, what it was, the status it says, when it was received. */
export type StatusDecision = readonly [
  at: string | null,
  source: 'status-update' | 'end-of-call-report',
  status: CallStatus,
  receivedAt: string,
];

/** Absent keys are registers no event has set yet (and keep the stored JSON short). */
export interface CallFoldState {
  readonly status?: StatusDecision;
  readonly caller?: Register<string>;
  readonly assistant?: Register<string>;
  readonly endedReason?: Register<string>;
  readonly debuggingArtifact?: Register<string>;
  readonly reportStartedAt?: Register<string>;
  readonly reportEndedAt?: Register<string>;
  readonly reportDurationSeconds?: Register<number>;
  readonly firstInProgressAt?: string;
  readonly firstEventAt?: string;
  readonly lastEventAt?: string;
}

export const calls = pgTable(
  'calls',
  {
    callId: text('call_id').primaryKey(),
    caller: text('caller'),
    assistant: text('assistant'),
    firstEventAt: timestamp('first_event_at', { withTimezone: true, precision: 3 }),
    lastEventAt: timestamp('last_event_at', { withTimezone: true, precision: 3 }),
    /**
     * `in-progress`, `ended` or `ended-with-debugging`: the status with the latest event time, except
     * that an ended call stays ended; an end-of-call report alone counts as `ended`. Null before any status.
     */
    status: text('status'),
    /** Set once the call has ended: `ended` or `ended-with-debugging`. An ended call stays ended. */
    outcome: text('outcome'),
    endedReason: text('ended_reason'),
    debuggingArtifact: text('debugging_artifact'),
    startedAt: timestamp('started_at', { withTimezone: true, precision: 3 }),
    endedAt: timestamp('ended_at', { withTimezone: true, precision: 3 }),
    durationSeconds: doublePrecision('duration_seconds'),
    eventCount: integer('event_count').notNull(),
    /** The stream revision of the last event applied: the guard that makes applying twice harmless. */
    lastRevision: bigint('last_revision', { mode: 'bigint' }).notNull(),
    lastCommitPosition: positionColumn('last_commit_position').notNull(),
    lastPreparePosition: positionColumn('last_prepare_position').notNull(),
    /**
     * The fold's registers (the event time behind each value); the projector's own, not for queries.
     * `json`, not `jsonb`: it is only ever written and read back whole, and `json` is cheaper to write.
     */
    foldState: json('fold_state').$type<CallFoldState>().notNull(),
  },
  (table) => [
    index('calls_last_event_at_idx').on(table.lastEventAt, table.callId),
    index('calls_first_event_at_idx').on(table.firstEventAt, table.callId),
    index('calls_status_idx').on(table.status, table.lastEventAt),
    index('calls_caller_idx').on(table.caller, table.lastEventAt),
    index('calls_assistant_idx').on(table.assistant, table.lastEventAt),
    // The Debug Info search walks only the calls that have an artifact, newest first: a term that
    // no recent artifact holds reads the artifacts back to its first match, not every call.
    index('calls_artifact_last_event_at_idx')
      .on(table.lastEventAt, table.callId)
      .where(sql`${table.debuggingArtifact} IS NOT NULL`),
  ],
);
export type CallRow = typeof calls.$inferSelect;

export const emptyCallFoldState: CallFoldState = {};

// Normalized ISO 8601 UTC strings of equal length sort like the times they denote.
const compareTimes = (a: string | null, b: string | null): number =>
  a === b ? 0 : a === null ? -1 : b === null ? 1 : a < b ? -1 : 1;

const compareValues = <T extends string | number>(a: T, b: T): number => (a === b ? 0 : a < b ? -1 : 1);

const minTime = (a: string | undefined, b: string | null): string | undefined =>
  b === null ? a : a === undefined || b < a ? b : a;

const maxTime = (a: string | undefined, b: string | null): string | undefined =>
  b === null ? a : a === undefined || b > a ? b : a;

const later = <T extends string | number>(
  current: Register<T> | undefined,
  at: string | null,
  value: T | null,
): Register<T> | undefined =>
  value === null ||
  (current !== undefined && (compareTimes(current[0], at) || compareValues(current[1], value)) >= 0)
    ? current
    : [at, value];

const isTerminal = (status: CallStatus | null): status is 'ended' | 'ended-with-debugging' =>
  status === 'ended' || status === 'ended-with-debugging';

const statusRank: Record<CallStatus, number> = { 'in-progress': 0, ended: 1, 'ended-with-debugging': 2 };

/**
 * An ending status-update outranks an end-of-call report, which outranks `in-progress`, whatever
 * the times: an ended call stays ended even when an in-progress update carries a later time, and a
 * report (which proves the end but says less) never hides the ending status it follows.
 */
const decisionClass = ([, source, status]: StatusDecision): number =>
  source === 'end-of-call-report' ? 1 : isTerminal(status) ? 2 : 0;

export const compareStatusDecisions = (a: StatusDecision, b: StatusDecision): number =>
  decisionClass(a) - decisionClass(b) ||
  compareTimes(a[0], b[0]) ||
  statusRank[a[2]] - statusRank[b[2]] ||
  compareValues(a[3], b[3]);

const decide = (
  current: StatusDecision | undefined,
  candidate: StatusDecision | undefined,
): StatusDecision | undefined =>
  candidate === undefined || (current !== undefined && compareStatusDecisions(current, candidate) >= 0)
    ? current
    : candidate;

const statusCandidate = (event: CallEvent): StatusDecision | undefined => {
  switch (event.eventType) {
    case 'status-update':
      return event.status === null
        ? undefined
        : [event.eventTime, 'status-update', event.status, event.receivedAt];
    case 'end-of-call-report':
      return [event.eventTime, 'end-of-call-report', 'ended', event.receivedAt];
    case 'tool-calls':
    case 'assistant-request':
    case 'unknown':
      return undefined;
    default: {
      const unhandled: never = event.eventType;
      throw new Error(`unhandled event type ${String(unhandled)}`);
    }
  }
};

/** Drops unset registers, so equal states are equal objects and the stored JSON stays short. */
const compact = (state: { [K in keyof CallFoldState]: CallFoldState[K] | undefined }): CallFoldState => {
  const set: Record<string, unknown> = {};
  // for-in, not Object.entries: this runs once per event, and allocating pairs shows.
  for (const key in state) {
    const value: unknown = state[key as keyof CallFoldState];
    if (value !== undefined) set[key] = value;
  }
  return set;
};

/** The registers after one more event. Pure; knows nothing of revisions (see `evolveCall`). */
export const foldCallState = (state: CallFoldState, event: CallEvent): CallFoldState => {
  const at = event.eventTime;
  const isReport = event.eventType === 'end-of-call-report';
  const isInProgress = event.eventType === 'status-update' && event.status === 'in-progress';
  return compact({
    status: decide(state.status, statusCandidate(event)),
    caller: later(state.caller, at, event.caller),
    assistant: later(state.assistant, at, event.assistant),
    endedReason: later(state.endedReason, at, event.endedReason),
    debuggingArtifact: later(state.debuggingArtifact, at, event.debuggingArtifact),
    reportStartedAt: isReport ? later(state.reportStartedAt, at, event.startedAt) : state.reportStartedAt,
    reportEndedAt: isReport ? later(state.reportEndedAt, at, event.endedAt) : state.reportEndedAt,
    reportDurationSeconds: isReport
      ? later(state.reportDurationSeconds, at, event.durationSeconds)
      : state.reportDurationSeconds,
    firstInProgressAt: isInProgress ? minTime(state.firstInProgressAt, at) : state.firstInProgressAt,
    firstEventAt: minTime(state.firstEventAt, at),
    lastEventAt: maxTime(state.lastEventAt, at),
  });
};

const toDate = (iso: string | null): Date | null => (iso === null ? null : new Date(iso));

/** The columns the registers stand for. */
export const renderCallState = (state: CallFoldState) => {
  const decision = state.status;
  const status = decision?.[2] ?? null;
  const outcome = isTerminal(status) ? status : null;
  const startedAt = state.reportStartedAt?.[1] ?? state.firstInProgressAt ?? null;
  // The ending status-update's own time is the end; a report's stated end (or its time) stands in
  // only when no ending status-update says when.
  const endedAt =
    decision === undefined || outcome === null
      ? null
      : decision[1] === 'status-update' && decision[0] !== null
        ? decision[0]
        : (state.reportEndedAt?.[1] ?? decision[0] ?? decision[3]);
  const computedDuration =
    startedAt !== null && endedAt !== null && endedAt >= startedAt
      ? (Date.parse(endedAt) - Date.parse(startedAt)) / 1000
      : null;
  return {
    caller: state.caller?.[1] ?? null,
    assistant: state.assistant?.[1] ?? null,
    firstEventAt: toDate(state.firstEventAt ?? null),
    lastEventAt: toDate(state.lastEventAt ?? null),
    status,
    outcome,
    endedReason: state.endedReason?.[1] ?? null,
    debuggingArtifact: state.debuggingArtifact?.[1] ?? null,
    startedAt: toDate(startedAt),
    endedAt: toDate(endedAt),
    durationSeconds: state.reportDurationSeconds?.[1] ?? computedDuration,
  };
};

/** What the fold carries from event to event: the registers and the stream bookkeeping. */
export type CallFold = Pick<
  CallRow,
  'callId' | 'foldState' | 'eventCount' | 'lastRevision' | 'lastCommitPosition' | 'lastPreparePosition'
>;

/**
 * The call's fold after one more event of its stream. An event at or below `lastRevision` was
 * applied before: the same object comes back, so callers can tell nothing changed.
 */
export const applyCallEvent = <Fold extends CallFold>(
  current: Fold | undefined,
  event: CallEvent,
): Fold | CallFold =>
  current !== undefined && event.revision <= current.lastRevision
    ? current
    : {
        callId: event.callId,
        foldState: foldCallState(current?.foldState ?? emptyCallFoldState, event),
        eventCount: (current?.eventCount ?? 0) + 1,
        lastRevision: event.revision,
        lastCommitPosition: event.position.commit,
        lastPreparePosition: event.position.prepare,
      };

/** The row a fold stands for. */
export const renderCall = (fold: CallFold): CallRow => ({
  callId: fold.callId,
  ...renderCallState(fold.foldState),
  eventCount: fold.eventCount,
  lastRevision: fold.lastRevision,
  lastCommitPosition: fold.lastCommitPosition,
  lastPreparePosition: fold.lastPreparePosition,
  foldState: fold.foldState,
});

/** The call's row after one more event; the same row object when the event was applied before. */
export const evolveCall = (current: CallRow | undefined, event: CallEvent): CallRow => {
  const next = applyCallEvent(current, event);
  return next === current ? current : renderCall(next);
};
