/**
 * Queries over the `calls` and `call_timeline` read models, and how their rows are shown.
 *
 * The list is ordered by `last_event_at` descending, then `call_id` descending, and paged by keyset
 * on that pair, which the `calls_last_event_at_idx` index (and the per-filter indexes) serve without
 * an offset scan. Calls that have no event time at all (only possible for events Flireo sent
 * without one) sort after every dated call, by `call_id`; a time filter excludes them.
 */
import {
  and,
  asc,
  desc,
  eq,
  getTableColumns,
  gte,
  ilike,
  isNull,
  isNotNull,
  lt,
  sql,
  type SQL,
} from 'drizzle-orm';
import { LRUCache } from 'lru-cache';
import Type from 'typebox';
import type { CallStatus } from '../archive/archived-event.ts';
import type { ReadModelDb } from '../database/database.ts';
import { formatPosition } from '../event-store/event-store.ts';
import { calls, type CallRow } from '../../projections/calls/read-model.ts';
import { callTimeline, type CallTimelineRow } from '../../projections/call-timeline/read-model.ts';
import { nullable } from './parameters.ts';
import { terminationOutcomes, type TerminationOutcome } from './terminations-csv.ts';

// Enums rather than unions of literals: a bad value then gets one clear error, not one per literal.
export const CallOutcome = Type.Enum([...terminationOutcomes], { description: 'How the call ended' });

const statuses: Record<CallStatus, true> = { 'in-progress': true, ended: true, 'ended-with-debugging': true };

export const CallStatusFilter = Type.Enum(Object.keys(statuses) as CallStatus[], {
  description: 'The status as of the latest event time',
});

const time = (description: string) => nullable(Type.String({ description: `${description} (ISO 8601 UTC)` }));

export const CallView = Type.Object({
  callId: Type.String(),
  caller: nullable(Type.String({ description: 'The calling number (E.164)' })),
  assistant: nullable(Type.String({ description: "The assistant's number (E.164)" })),
  status: nullable(Type.String({ description: 'in-progress, ended or ended-with-debugging' })),
  outcome: nullable(Type.String({ description: 'ended or ended-with-debugging, once the call has ended' })),
  endedReason: nullable(Type.String()),
  debuggingArtifact: nullable(Type.String()),
  firstEventAt: time('Event time of the earliest event'),
  lastEventAt: time('Event time of the latest event'),
  startedAt: time('When the call started'),
  endedAt: time('When the call ended'),
  durationSeconds: nullable(Type.Number()),
  eventCount: Type.Integer(),
  lastRevision: Type.Integer({ description: 'Stream revision of the last event applied' }),
  lastPosition: Type.String({
    description: 'Global position of the last event applied, "<commit>/<prepare>"',
  }),
});
export type CallView = Type.Static<typeof CallView>;

export const TimelineEntryView = Type.Object({
  eventId: Type.String(),
  eventType: Type.String(),
  status: nullable(Type.String()),
  rawStatus: nullable(Type.String()),
  debuggingArtifact: nullable(Type.String()),
  endedReason: nullable(Type.String()),
  eventTime: time('Event time, as Flireo stated it'),
  receivedAt: Type.String({ description: 'When calltrail received it (ISO 8601 UTC)' }),
  signatureVerified: Type.Boolean(),
  payloadGeneration: Type.Integer(),
  revision: Type.Integer(),
  position: Type.String(),
});
export type TimelineEntryView = Type.Static<typeof TimelineEntryView>;

const iso = (at: Date | null): string | null => (at === null ? null : at.toISOString());

/** Every column the API shows; `fold_state` is the projection's own bookkeeping, large, and never shown. */
const { foldState: _foldState, ...shownColumns } = getTableColumns(calls);
export type ShownCallRow = Omit<CallRow, 'foldState'>;

export const toCallView = (row: ShownCallRow): CallView => ({
  callId: row.callId,
  caller: row.caller,
  assistant: row.assistant,
  status: row.status,
  outcome: row.outcome,
  endedReason: row.endedReason,
  debuggingArtifact: row.debuggingArtifact,
  firstEventAt: iso(row.firstEventAt),
  lastEventAt: iso(row.lastEventAt),
  startedAt: iso(row.startedAt),
  endedAt: iso(row.endedAt),
  durationSeconds: row.durationSeconds,
  eventCount: row.eventCount,
  lastRevision: Number(row.lastRevision),
  lastPosition: formatPosition({ commit: row.lastCommitPosition, prepare: row.lastPreparePosition }),
});

export const toTimelineEntryView = (row: CallTimelineRow): TimelineEntryView => ({
  eventId: row.eventId,
  eventType: row.eventType,
  status: row.status,
  rawStatus: row.rawStatus,
  debuggingArtifact: row.debuggingArtifact,
  endedReason: row.endedReason,
  eventTime: iso(row.eventTime),
  receivedAt: row.receivedAt.toISOString(),
  signatureVerified: row.signatureVerified,
  payloadGeneration: row.payloadGeneration,
  revision: Number(row.streamRevision),
  position: formatPosition({ commit: row.commitPosition, prepare: row.preparePosition }),
});

export interface CallFilter {
  /** `last_event_at` inclusive. */
  readonly from?: Date | undefined;
  /** `last_event_at` exclusive. */
  readonly to?: Date | undefined;
  readonly status?: CallStatus | undefined;
  readonly outcome?: TerminationOutcome | undefined;
  readonly caller?: string | undefined;
  readonly assistant?: string | undefined;
  /** Text anywhere within the debugging artifact (Debug Info), case-insensitive. */
  readonly debugInfo?: string | undefined;
}

/** `text` as a LIKE pattern that matches it literally, anywhere. */
const containing = (text: string): string => `%${text.replace(/[\\%_]/g, (character) => `\\${character}`)}%`;

/** Where a page starts: the sort key of the last call of the previous page. */
export const CallsPageKey = Type.Tuple([Type.Union([Type.String(), Type.Null()]), Type.String()]);
export type CallsPageKey = Type.Static<typeof CallsPageKey>;

export interface CallsPage {
  readonly calls: readonly ShownCallRow[];
  /** Present when more calls follow. */
  readonly next: CallsPageKey | undefined;
}

const filterConditions = (filter: CallFilter): SQL[] =>
  [
    filter.from && gte(calls.lastEventAt, filter.from),
    filter.to && lt(calls.lastEventAt, filter.to),
    filter.status && eq(calls.status, filter.status),
    filter.outcome && eq(calls.outcome, filter.outcome),
    filter.caller !== undefined && eq(calls.caller, filter.caller),
    filter.assistant !== undefined && eq(calls.assistant, filter.assistant),
    filter.debugInfo !== undefined && ilike(calls.debuggingArtifact, containing(filter.debugInfo)),
  ].filter((condition): condition is SQL => typeof condition === 'object');

interface PageKey {
  readonly at: Date;
  readonly callId: string;
}

const keyBefore = (key: PageKey): SQL =>
  sql`(${calls.lastEventAt}, ${calls.callId}) < (${key.at.toISOString()}::timestamptz, ${key.callId})`;

/**
 * Dated calls newest first, after `before` (exclusive). `matchesAnyOrder` sorts by an expression no
 * index has, so that PostgreSQL finds every match through the filters' own indexes and sorts them,
 * rather than walking the time index.
 */
const datedPage = async (
  db: ReadModelDb,
  conditions: readonly SQL[],
  before: PageKey | undefined,
  order: { readonly matchesAnyOrder: boolean },
  limit: number,
): Promise<ShownCallRow[]> =>
  db
    .select(shownColumns)
    .from(calls)
    .where(and(...conditions, isNotNull(calls.lastEventAt), before && keyBefore(before)))
    .orderBy(
      order.matchesAnyOrder ? sql`${calls.lastEventAt} + interval '0 s' DESC` : desc(calls.lastEventAt),
      desc(calls.callId),
    )
    .limit(limit);

/** Up to this many matches (PostgreSQL's estimate), a search sorts its matches from the trigram index. */
export const debugInfoIndexedMatches = 4_000;
/** Terms whose estimate is kept, per database, and for how long: the archive grows, so do the estimates. */
const estimatedTerms = 1_000;
const estimateLifetimeMs = 60_000;

const termEstimates = new WeakMap<ReadModelDb, LRUCache<string, number>>();

/**
 * PostgreSQL's estimate of the calls whose artifact contains `text` (planning only, no scan), kept
 * for a while so that paging through a search, or searching again, costs no extra round trip.
 */
const estimatedMatches = async (db: ReadModelDb, text: string): Promise<number> => {
  let estimates = termEstimates.get(db);
  if (estimates === undefined) {
    estimates = new LRUCache({ max: estimatedTerms, ttl: estimateLifetimeMs });
    termEstimates.set(db, estimates);
  }
  const term = text.toLowerCase();
  const known = estimates.get(term);
  if (known !== undefined) return known;
  const result = await db.execute<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>(
    sql`EXPLAIN (FORMAT JSON) SELECT 1 FROM ${calls} WHERE ${ilike(calls.debuggingArtifact, containing(text))}`,
  );
  const matches = result.rows[0]?.['QUERY PLAN'][0].Plan['Plan Rows'] ?? Number.POSITIVE_INFINITY;
  estimates.set(term, matches);
  return matches;
};

/**
 * A Debug Info search: one statement, chosen by how many calls the term matches. A rare term's
 * matches come from the trigram index, sorted (reading only its matches, wherever they are in
 * time); a common term's from walking the calls with an artifact newest first, where they are soon
 * met. Walking for a rare term would read every artifact back to its first match (an order id of
 * last month, a failure that stopped: most of the archive), and sorting a common term's matches
 * would read thousands.
 */
const searchedPage = async (
  db: ReadModelDb,
  conditions: readonly SQL[],
  text: string,
  before: PageKey | undefined,
  wanted: number,
): Promise<ShownCallRow[]> =>
  datedPage(
    db,
    conditions,
    before,
    { matchesAnyOrder: (await estimatedMatches(db, text)) <= debugInfoIndexedMatches },
    wanted,
  );

/**
 * One page of calls. `after` is decoded from a cursor: its time is null once the listing has
 * reached the undated calls.
 */
export const listCalls = async (
  db: ReadModelDb,
  filter: CallFilter,
  page: { readonly limit: number; readonly after: { at: Date | null; callId: string } | undefined },
): Promise<CallsPage> => {
  const conditions = filterConditions(filter);
  const wanted = page.limit + 1;
  const rows: ShownCallRow[] = [];
  const after = page.after;
  if (after === undefined || after.at !== null) {
    const before = after && { at: after.at!, callId: after.callId };
    rows.push(
      ...(filter.debugInfo === undefined
        ? await datedPage(db, conditions, before, { matchesAnyOrder: false }, wanted)
        : await searchedPage(db, conditions, filter.debugInfo, before, wanted)),
    );
  }
  const hasTimeFilter = filter.from !== undefined || filter.to !== undefined;
  if (rows.length < wanted && !hasTimeFilter) {
    rows.push(
      ...(await db
        .select(shownColumns)
        .from(calls)
        .where(
          and(
            ...conditions,
            isNull(calls.lastEventAt),
            after?.at === null ? lt(calls.callId, after.callId) : undefined,
          ),
        )
        .orderBy(desc(calls.callId))
        .limit(wanted - rows.length)),
    );
  }
  const pageRows = rows.slice(0, page.limit);
  const last = pageRows.at(-1);
  return {
    calls: pageRows,
    next: rows.length > page.limit && last ? [iso(last.lastEventAt), last.callId] : undefined,
  };
};

export const findCall = async (db: ReadModelDb, callId: string): Promise<ShownCallRow | undefined> =>
  (await db.select(shownColumns).from(calls).where(eq(calls.callId, callId)).limit(1))[0];

/** A call's timeline in event-time order (undated events last), then stream order. */
export const findCallTimeline = async (db: ReadModelDb, callId: string): Promise<CallTimelineRow[]> =>
  db
    .select()
    .from(callTimeline)
    .where(eq(callTimeline.callId, callId))
    .orderBy(sql`${callTimeline.eventTime} ASC NULLS LAST`, asc(callTimeline.streamRevision));
