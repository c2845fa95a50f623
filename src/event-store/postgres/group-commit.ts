/**
 * Group commit: the appends of one process share transactions. One transaction is in flight at a
 * time; appends arriving meanwhile wait and are written together by the next one (one multi-row
 * INSERT). Each caller is answered only after the transaction holding its events committed, and each
 * append is decided on its own, so a wrong expected version refuses that append and no other.
 *
 * Every transaction first takes the append lock (see the migration), which is what makes positions
 * gap-free for readers; batching is what keeps that serialization fast. A batch whose appends all
 * name their exact expected revisions (the idempotent append's always do) is written by one
 * statement, one round trip, when each stream's head is where expected; any other batch is decided
 * append by append in a transaction of its own.
 */
import type pg from 'pg';
import type { Logger } from '../../logger.ts';
import { EventStoreUnavailableError, type AppendResult, type ExpectedRevision } from '../event-store.ts';
import { decideAppend, type StreamView } from './append-decision.ts';
import { asError, connectWithin, isUnavailable, timedOut, translateError, withTimeout } from './errors.ts';
import { arrayParameter } from '../../database/sql.ts';
import { positionOf } from './positions.ts';

/** Key 0x63616c6c74726c01 ("calltrl" + 1), as in the migration's serialize_appends trigger. */
export const appendLockKey = '7161124095561722881';

/** An event ready to be written: validated, id normalized, JSON already serialized. */
export interface EncodedEvent {
  readonly id: string;
  readonly type: string;
  readonly data: string;
  readonly metadata: string;
}

export interface AppendRequest {
  readonly streamName: string;
  readonly events: readonly EncodedEvent[];
  readonly expected: ExpectedRevision;
}

interface PendingAppend extends AppendRequest {
  readonly bytes: number;
  /** Retried alone after its batch failed for a reason that may be its own. */
  isolated: boolean;
  settled: boolean;
  resolve(result: AppendResult): void;
  reject(error: Error): void;
}

export interface GroupCommitOptions {
  readonly timeoutMs: number;
  /** Most appends in one transaction. */
  readonly maxBatchAppends: number;
  /** Soft bound on the JSON bytes in one transaction (a larger single append still goes alone). */
  readonly maxBatchBytes: number;
  readonly logger?: Logger;
}

interface StoredRef {
  readonly id: string;
  readonly revision: bigint;
  readonly position: bigint;
}

/** Where an acknowledged event's position comes from: stored already, or a row of this batch. */
type PositionSource = { readonly stored: bigint } | { readonly row: number };

interface BatchRow {
  readonly streamName: string;
  readonly revision: bigint;
  readonly event: EncodedEvent;
}

const headsSql = `
  SELECT s.stream_name,
         (SELECT e.revision FROM event_store.events e
           WHERE e.stream_name = s.stream_name ORDER BY e.revision DESC LIMIT 1) AS head
    FROM unnest($1::text[]) AS s(stream_name)`;

const revisionRangesSql = `
  SELECT e.stream_name, e.revision, e.event_id::text AS event_id, e.position
    FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS r(stream_name, first_revision, last_revision)
    JOIN event_store.events e
      ON e.stream_name = r.stream_name AND e.revision BETWEEN r.first_revision AND r.last_revision`;

const eventIdsSql = `
  SELECT DISTINCT ON (e.stream_name, e.event_id) e.stream_name, e.event_id::text AS event_id, e.revision, e.position
    FROM unnest($1::text[], $2::uuid[]) AS r(stream_name, event_id)
    JOIN event_store.events e ON e.event_id = r.event_id AND e.stream_name = r.stream_name
   ORDER BY e.stream_name, e.event_id, e.revision DESC`;

// Every insert goes through this function (see the migration): it takes the lock, writes the rows
// when each stream's head is where expected, checks that positions follow the given order, and returns
// no row when a head is elsewhere. Called alone it is one round trip and its own implicit transaction.
// The JSON columns travel as two JSON arrays whose elements are the events' own JSON texts, joined as
// they are: nothing is escaped on the way (a `json[]` array literal would escape every quote and
// backslash of every payload, and the server would undo it), and `json_array_elements` hands each
// element back as its exact text. ROWS FROM zips the arrays by position and ORDINALITY keeps the
// given order, so positions follow revisions within a stream (checked by the function before commit).
const appendAtExpectedHeadsSql = `
  SELECT appended_position AS position
    FROM event_store.append_at_expected_heads(
           $1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::uuid[], $6::text[], $7::json, $8::json)`;

/** Events' JSON texts (each a whole JSON value, as `JSON.stringify` wrote it) as one JSON array. */
const jsonArrayOf = (texts: readonly string[]): string => `[${texts.join(',')}]`;

/** The function's parameters for `rows`, each stream's continuing from its head in `heads`. */
const appendParameters = (heads: ReadonlyMap<string, bigint>, rows: readonly BatchRow[]): unknown[] => [
  arrayParameter('text', [...heads.keys()]),
  arrayParameter(
    'int8',
    [...heads.values()].map((head) => head.toString()),
  ),
  arrayParameter(
    'text',
    rows.map((row) => row.streamName),
  ),
  arrayParameter(
    'int8',
    rows.map((row) => row.revision.toString()),
  ),
  arrayParameter(
    'uuid',
    rows.map((row) => row.event.id),
  ),
  arrayParameter(
    'text',
    rows.map((row) => row.event.type),
  ),
  jsonArrayOf(rows.map((row) => row.event.data)),
  jsonArrayOf(rows.map((row) => row.event.metadata)),
];

/** Per-stream state while a batch is being decided: stored rows looked up, plus this batch's rows. */
class StreamState implements StreamView {
  readonly byRevision = new Map<bigint, StoredRef>();
  readonly latestById = new Map<string, StoredRef>();
  readonly batchRows = new Map<bigint, number>();
  readonly batchIds = new Map<string, bigint>();
  head: bigint | undefined;

  constructor(
    readonly storedHead: bigint | undefined,
    private readonly rows: readonly BatchRow[],
  ) {
    this.head = storedHead;
  }

  idAt(revision: bigint): string | undefined {
    const row = this.batchRows.get(revision);
    return row === undefined ? this.byRevision.get(revision)?.id : this.rows[row]?.event.id;
  }

  latestRevisionOf(eventId: string): bigint | undefined {
    return this.batchIds.get(eventId) ?? this.latestById.get(eventId)?.revision;
  }

  positionSource(revision: bigint): PositionSource | undefined {
    const row = this.batchRows.get(revision);
    if (row !== undefined) return { row };
    const stored =
      this.byRevision.get(revision) ?? [...this.latestById.values()].find((r) => r.revision === revision);
    return stored === undefined ? undefined : { stored: stored.position };
  }
}

type Outcome =
  | {
      readonly kind: 'appended';
      readonly nextRevision: bigint;
      readonly position: PositionSource;
      readonly written: boolean;
    }
  | { readonly kind: 'wrong-expected-version'; readonly actualRevision: bigint | 'no-stream' };

/**
 * Where each stream's head must be for the whole batch to be a write, when that alone decides it:
 * every append expects an exact revision (or no stream), and each later append to a stream expects
 * the revision the one before it in the batch ends at. Undefined otherwise (an `any` append, or
 * expectations that do not follow on, which `decideAppend` must judge one by one).
 */
const expectedHeadsOf = (batch: readonly AppendRequest[]): Map<string, bigint> | undefined => {
  const firstHeads = new Map<string, bigint>();
  const nextHeads = new Map<string, bigint>();
  for (const { streamName, expected, events } of batch) {
    if (expected !== 'no-stream' && typeof expected !== 'bigint') return undefined;
    const head = expected === 'no-stream' ? -1n : expected;
    const next = nextHeads.get(streamName);
    if (next === undefined) firstHeads.set(streamName, head);
    else if (next !== head) return undefined;
    nextHeads.set(streamName, head + BigInt(events.length));
  }
  return firstHeads;
};

export class GroupCommitWriter {
  private readonly queue: PendingAppend[] = [];
  private flushing: Promise<void> | undefined;
  private closed = false;
  /** Transactions committed and appends answered by them; for logs and tests. */
  readonly stats = { transactions: 0, appends: 0 };

  constructor(
    private readonly pool: pg.Pool,
    private readonly options: GroupCommitOptions,
  ) {}

  append(request: AppendRequest): Promise<AppendResult> {
    if (this.closed) {
      return Promise.reject(new EventStoreUnavailableError('the event store is closing'));
    }
    return new Promise<AppendResult>((resolve, reject) => {
      const bytes = request.events.reduce(
        (sum, event) => sum + event.data.length + event.metadata.length + event.type.length + 64,
        request.streamName.length,
      );
      // A timer cleared when the append settles (`AbortSignal.timeout` cannot be cancelled, so each
      // append would leave one behind to fire and build an exception).
      const expire = () => {
        if (pending.settled) return;
        // Still queued: it will not be written at all. Already in flight: its outcome is unknown to
        // us, which is why callers re-append with the same ids and an exact expected revision.
        const index = this.queue.indexOf(pending);
        if (index >= 0) this.queue.splice(index, 1);
        pending.reject(timedOut('appending', this.options.timeoutMs));
      };
      const deadline = setTimeout(expire, this.options.timeoutMs);
      const pending: PendingAppend = {
        ...request,
        bytes,
        isolated: false,
        settled: false,
        resolve: (result) => {
          if (pending.settled) return;
          pending.settled = true;
          clearTimeout(deadline);
          resolve(result);
        },
        reject: (error) => {
          if (pending.settled) return;
          pending.settled = true;
          clearTimeout(deadline);
          reject(error);
        },
      };
      this.queue.push(pending);
      this.startFlushing();
    });
  }

  /** Refuses new appends and waits for the queued ones to be written or to time out. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await this.flushing;
  }

  private startFlushing(): void {
    if (this.flushing) return;
    this.flushing = this.drain().finally(() => {
      this.flushing = undefined;
      if (this.queue.length > 0) this.startFlushing();
    });
  }

  private async drain(): Promise<void> {
    // Appends made in the same tick (e.g. a Promise.all) share the first transaction too.
    await Promise.resolve();
    for (;;) {
      const batch = this.takeBatch();
      if (batch.length === 0) return;
      try {
        await this.flush(batch, { retryLostConnection: true });
      } catch (error) {
        this.handleFailedBatch(batch, error);
      }
    }
  }

  private takeBatch(): PendingAppend[] {
    const first = this.queue[0];
    if (first === undefined) return [];
    if (first.isolated) return this.queue.splice(0, 1);
    let count = 0;
    let bytes = 0;
    for (const pending of this.queue) {
      if (pending.isolated) break;
      if (
        count > 0 &&
        (count >= this.options.maxBatchAppends || bytes + pending.bytes > this.options.maxBatchBytes)
      )
        break;
      count += 1;
      bytes += pending.bytes;
    }
    return this.queue.splice(0, count);
  }

  private handleFailedBatch(batch: PendingAppend[], error: unknown): void {
    const live = batch.filter((pending) => !pending.settled);
    if (isUnavailable(error) || live.length <= 1) {
      const failure = asError(translateError(error, 'appending'));
      if (!isUnavailable(error)) this.options.logger?.error({ err: error }, 'event-store append failed');
      for (const pending of live) pending.reject(failure);
      return;
    }
    // Not a transport failure, so possibly one append's own fault (e.g. data the database refuses):
    // retry each alone, ahead of the queue, so only the culprit fails.
    this.options.logger?.warn(
      { err: error, appends: live.length },
      'event-store batch failed; retrying its appends one by one',
    );
    for (const pending of live) pending.isolated = true;
    this.queue.unshift(...live);
  }

  private async flush(batch: PendingAppend[], options: { retryLostConnection: boolean }): Promise<void> {
    const { timeoutMs } = this.options;
    const client = await connectWithin(this.pool, timeoutMs, 'connecting to append');
    const progress = { commitSent: false, timedOut: false };
    let released = false;
    const discard = (reason: unknown) => {
      released = true;
      client.release(asError(reason));
    };
    try {
      const outcomes = await withTimeout(
        this.writeBatch(client, batch, progress),
        timeoutMs,
        'appending',
        () => {
          // Abandon the transaction: ending the connection makes the server roll it back.
          progress.timedOut = true;
          discard(new Error('append transaction abandoned after timeout'));
        },
      );
      this.stats.transactions += 1;
      this.stats.appends += batch.length;
      batch.forEach((pending, index) => {
        const outcome = outcomes[index];
        if (outcome !== undefined) pending.resolve(outcome);
      });
    } catch (error) {
      if (released) throw error;
      if (!isUnavailable(error)) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      }
      discard(error);
      // A pooled connection can die while idle (a database restart, a cut connection) and only say
      // so when used. Nothing was committed if COMMIT was never sent, so one retry on a fresh
      // connection is safe, and spares the callers a failure the database did not cause.
      const live = batch.filter((pending) => !pending.settled);
      if (!options.retryLostConnection || progress.commitSent || live.length === 0) throw error;
      this.options.logger?.warn({ err: error }, 'event-store connection lost before commit; retrying once');
      await this.flush(live, { retryLostConnection: false });
    } finally {
      if (!released) client.release();
    }
  }

  /**
   * The batch in one round trip when it can be (every append expects an exact revision, as the
   * idempotent append's do); otherwise, or when a head is not where expected, one transaction: lock,
   * look, decide each append in order, insert, commit.
   */
  private async writeBatch(
    client: pg.PoolClient,
    batch: readonly PendingAppend[],
    progress: { commitSent: boolean },
  ): Promise<AppendResult[]> {
    const expectedHeads = expectedHeadsOf(batch);
    if (expectedHeads !== undefined) {
      // Not `commitSent`: a retry after a lost connection is safe here, because every append names
      // its exact revision: if the lost attempt committed, the retry finds the heads moved and each
      // append is then recognised as already written.
      const written = await this.appendAtExpectedHeads(client, batch, expectedHeads);
      if (written !== undefined) return written;
    }
    return this.decideAndWrite(client, batch, progress);
  }

  /** The batch written whole when each stream's head is where expected; undefined when one is not. */
  private async appendAtExpectedHeads(
    client: pg.PoolClient,
    batch: readonly PendingAppend[],
    expectedHeads: ReadonlyMap<string, bigint>,
  ): Promise<AppendResult[] | undefined> {
    const rows: BatchRow[] = [];
    const lastRows = batch.map(({ streamName, expected, events }) => {
      // Exact expectations that follow on (`expectedHeadsOf`): each append starts after its own.
      const head = typeof expected === 'bigint' ? expected : -1n;
      events.forEach((event, index) => rows.push({ streamName, revision: head + 1n + BigInt(index), event }));
      return rows.length - 1;
    });
    const positions = await this.appendRows(client, expectedHeads, rows);
    if (positions === undefined) return undefined;
    return lastRows.map((row): AppendResult => ({
      outcome: 'appended',
      nextRevision: rows[row]!.revision,
      position: positionOf(positions[row]!),
      written: true,
    }));
  }

  /** One transaction: lock, look, decide each append in order, insert, commit. */
  private async decideAndWrite(
    client: pg.PoolClient,
    batch: readonly PendingAppend[],
    progress: { commitSent: boolean },
  ): Promise<AppendResult[]> {
    // Two statements, two snapshots: the reads below start after the lock is held, so they see every
    // transaction that held it before us.
    await client.query(`BEGIN; SELECT pg_advisory_xact_lock(${appendLockKey})`);

    const rows: BatchRow[] = [];
    const streamNames = [...new Set(batch.map((pending) => pending.streamName))];
    const heads = await client.query<{ stream_name: string; head: string | null }>({
      name: 'calltrail-append-heads',
      text: headsSql,
      values: [streamNames],
    });
    const streams = new Map(
      heads.rows.map((row) => [
        row.stream_name,
        new StreamState(row.head === null ? undefined : BigInt(row.head), rows),
      ]),
    );
    const stateOf = (streamName: string): StreamState => {
      const state = streams.get(streamName);
      if (state === undefined) throw new Error(`no state loaded for stream ${streamName}`);
      return state;
    };
    await this.loadIdempotencyFacts(client, batch, stateOf);

    const outcomes: Outcome[] = batch.map((pending) => {
      const stream = stateOf(pending.streamName);
      const decision = decideAppend(
        pending.expected,
        pending.events.map((event) => event.id),
        stream,
      );
      switch (decision.kind) {
        case 'write': {
          pending.events.forEach((event, index) => {
            const revision = decision.firstRevision + BigInt(index);
            stream.batchRows.set(revision, rows.length);
            stream.batchIds.set(event.id, revision);
            rows.push({ streamName: pending.streamName, revision, event });
          });
          const nextRevision = decision.firstRevision + BigInt(pending.events.length - 1);
          stream.head = nextRevision;
          return { kind: 'appended', nextRevision, position: { row: rows.length - 1 }, written: true };
        }
        case 'idempotent': {
          const position = stream.positionSource(decision.lastRevision);
          if (position === undefined) {
            throw new Error(
              `idempotent append to ${pending.streamName} matched an event that was not loaded`,
            );
          }
          return { kind: 'appended', nextRevision: decision.lastRevision, position, written: false };
        }
        case 'wrong-expected-version':
          return decision;
        default: {
          const unexpected: never = decision;
          throw new Error(`unexpected decision ${JSON.stringify(unexpected)}`);
        }
      }
    });

    // Each stream's rows continue from the head read under the lock, which nobody else can move.
    const headsOfWritten = new Map(
      rows.map((row) => [row.streamName, stateOf(row.streamName).storedHead ?? -1n] as const),
    );
    const rowPositions = rows.length > 0 ? await this.appendRows(client, headsOfWritten, rows) : [];
    if (rowPositions === undefined) throw new Error('a stream head moved while the append lock was held');
    progress.commitSent = true;
    await client.query('COMMIT');

    return outcomes.map((outcome): AppendResult => {
      if (outcome.kind === 'wrong-expected-version') {
        return { outcome: 'wrong-expected-version', actualRevision: outcome.actualRevision };
      }
      const stored =
        'stored' in outcome.position ? outcome.position.stored : rowPositions[outcome.position.row];
      if (stored === undefined) throw new Error('an appended row has no position');
      return {
        outcome: 'appended',
        nextRevision: outcome.nextRevision,
        position: positionOf(stored),
        written: outcome.written,
      };
    });
  }

  /**
   * Loads what idempotency checks need, from stored events only (the batch's own rows are known):
   * ids at the revisions an exact-revision retry claims, and where the ids of `any` appends are.
   */
  private async loadIdempotencyFacts(
    client: pg.PoolClient,
    batch: readonly PendingAppend[],
    stateOf: (streamName: string) => StreamState,
  ): Promise<void> {
    const ranges: { streamName: string; first: bigint; last: bigint }[] = [];
    const ids: { streamName: string; id: string }[] = [];
    for (const pending of batch) {
      const { storedHead } = stateOf(pending.streamName);
      if (pending.expected === 'any' || pending.expected === 'stream-exists') {
        if (storedHead !== undefined) {
          for (const event of pending.events) ids.push({ streamName: pending.streamName, id: event.id });
        }
        continue;
      }
      const expected = pending.expected === 'no-stream' ? -1n : pending.expected;
      if (storedHead === undefined || expected >= storedHead) continue;
      const last = expected + BigInt(pending.events.length);
      ranges.push({
        streamName: pending.streamName,
        first: expected + 1n,
        last: last < storedHead ? last : storedHead,
      });
    }
    if (ranges.length > 0) {
      const found = await client.query<{
        stream_name: string;
        revision: string;
        event_id: string;
        position: string;
      }>({
        name: 'calltrail-append-revision-ranges',
        text: revisionRangesSql,
        values: [
          ranges.map((r) => r.streamName),
          ranges.map((r) => r.first.toString()),
          ranges.map((r) => r.last.toString()),
        ],
      });
      for (const row of found.rows) {
        const ref = { id: row.event_id, revision: BigInt(row.revision), position: BigInt(row.position) };
        stateOf(row.stream_name).byRevision.set(ref.revision, ref);
      }
    }
    if (ids.length > 0) {
      const found = await client.query<{
        stream_name: string;
        revision: string;
        event_id: string;
        position: string;
      }>({
        name: 'calltrail-append-event-ids',
        text: eventIdsSql,
        values: [ids.map((i) => i.streamName), ids.map((i) => i.id)],
      });
      for (const row of found.rows) {
        const ref = { id: row.event_id, revision: BigInt(row.revision), position: BigInt(row.position) };
        stateOf(row.stream_name).latestById.set(ref.id, ref);
      }
    }
  }

  /** Writes `rows` in order; their positions, in order; undefined (nothing written) when a head moved. */
  private async appendRows(
    client: pg.PoolClient,
    heads: ReadonlyMap<string, bigint>,
    rows: readonly BatchRow[],
  ): Promise<bigint[] | undefined> {
    const appended = await client.query<{ position: string }>({
      name: 'calltrail-append-at-expected-heads',
      text: appendAtExpectedHeadsSql,
      values: appendParameters(heads, rows),
    });
    if (appended.rows.length === 0) return undefined;
    if (appended.rows.length !== rows.length) {
      throw new Error(`${appended.rows.length} positions returned for ${rows.length} events`);
    }
    return appended.rows.map((row) => BigInt(row.position));
  }
}
