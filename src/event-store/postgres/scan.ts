/**
 * Reading the events table: one bounded query per page, no long-lived transaction or cursor. The
 * $all scan reads a window of consecutive positions and flags which rows match the stream-prefix
 * filter, so a filtered reader always knows how far it has looked, even past events it skips.
 */
import os from 'node:os';
import pg from 'pg';
import { eventHashBytes, type HashedEventColumns, type RecordedEvent } from '../event-store.ts';
import { asError, connectWithin, isUnavailable, withTimeout } from './errors.ts';
import { positionOf } from './positions.ts';

interface EventRow {
  position: string;
  stream_name: string;
  revision: string;
  event_id: string;
  event_type: string;
  created: Date;
  /** The json columns' text: the pools return json unparsed (see `keepJsonText`). */
  data: string;
  metadata: string;
}

const jsonOid = 114;

/**
 * Type parsers for the event store's pools: `json` columns come back as their exact text (the
 * column keeps it as written), parsed by `toRecordedEvent`, which keeps both forms.
 */
const parseJsonAsText = (text: string): string => text;

export const keepJsonText: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary'): unknown =>
    oid === jsonOid
      ? parseJsonAsText
      : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

interface ScanRow extends EventRow {
  matches: boolean;
}

export interface ScannedPosition {
  readonly position: bigint;
  /** Present when the row matched the filter. */
  readonly event: RecordedEvent | undefined;
}

const toRecordedEvent = (row: EventRow): RecordedEvent => ({
  streamName: row.stream_name,
  id: row.event_id,
  type: row.event_type,
  revision: BigInt(row.revision),
  position: positionOf(BigInt(row.position)),
  data: JSON.parse(row.data) as unknown,
  metadata: JSON.parse(row.metadata) as unknown,
  storedData: row.data,
  storedMetadata: row.metadata,
  created: row.created,
});

const eventColumns = `position, stream_name, revision, event_id::text AS event_id, event_type, created`;

const streamPageSql = (direction: 'forwards' | 'backwards') => {
  const [comparison, order] = direction === 'forwards' ? ['>=', 'ASC'] : ['<=', 'DESC'];
  return `
  SELECT ${eventColumns}, data, metadata
    FROM event_store.events
   WHERE stream_name = $1 AND revision ${comparison} $2
   ORDER BY revision ${order}
   LIMIT $3`;
};

const forwardsStreamPageSql = streamPageSql('forwards');
const backwardsStreamPageSql = streamPageSql('backwards');

// data and metadata are only sent (and only de-TOASTed) for rows that match.
const windowSql = (direction: 'forwards' | 'backwards') => {
  const [comparison, order] = direction === 'forwards' ? ['>=', 'ASC'] : ['<=', 'DESC'];
  return `
  SELECT w.position, w.stream_name, w.revision, w.event_id::text AS event_id, w.event_type, w.created,
         CASE WHEN w.matches THEN w.data END AS data,
         CASE WHEN w.matches THEN w.metadata END AS metadata,
         w.matches
    FROM (SELECT e.*,
                 EXISTS (SELECT 1 FROM unnest($2::text[]) AS p(prefix) WHERE starts_with(e.stream_name, p.prefix))
                   AS matches
            FROM event_store.events e
           WHERE e.position ${comparison} $1
           ORDER BY e.position ${order}
           LIMIT $3) AS w
   ORDER BY w.position ${order}`;
};

const forwardsWindowSql = windowSql('forwards');
const backwardsWindowSql = windowSql('backwards');

// For sealing: the hash recorded as each row was written (see the event-store migrations), or
// computed by `event_store.event_hash` over exactly the bytes `eventHash` hashes for a row written
// before hashes were recorded. Verification never reads these: it hashes the stored bytes itself
// (`stored-events.ts`). Only matching rows are hashed (and de-TOASTed); every row still counts in
// how far the look went. The window comes back as one row of columns, not a row per event: each
// number column as the numbers' binary forms end to end, the hashes likewise, and each stream named
// once (numbered by its first event in the window), so the reader builds no object per event.
const recordedHashWindowSql = `
  WITH w AS (
    SELECT e.position, e.stream_name, e.revision, e.created,
           CASE WHEN e.stream_name ^@ ANY ($2::text[])
                THEN coalesce(e.hash, event_store.event_hash(e.stream_name, e.revision, e.event_id,
                                                             e.event_type, e.data, e.metadata))
           END AS hash
      FROM event_store.events e
     WHERE e.position > $1
     ORDER BY e.position
     LIMIT $3
  ), numbered AS (
    SELECT f.*, (dense_rank() OVER (ORDER BY f.first_position) - 1)::int AS stream_index
      FROM (SELECT w.*, min(w.position) OVER (PARTITION BY w.stream_name) AS first_position
              FROM w
             WHERE w.hash IS NOT NULL) AS f
  )
  SELECT (SELECT count(*) FROM w)::int AS positions,
         (SELECT max(position) FROM w)::text AS looked_at,
         array_agg(n.stream_name ORDER BY n.position) FILTER (WHERE n.position = n.first_position) AS streams,
         string_agg(int4send(n.stream_index), ''::bytea ORDER BY n.position) AS stream_indexes,
         string_agg(int8send(n.position), ''::bytea ORDER BY n.position) AS commits,
         string_agg(int8send(n.revision), ''::bytea ORDER BY n.position) AS revisions,
         string_agg(n.hash, ''::bytea ORDER BY n.position) AS hashes,
         string_agg(float8send(floor(extract(epoch FROM n.created) * 1000)::float8), ''::bytea
                    ORDER BY n.position) AS created_ms
    FROM numbered n`;

interface HashWindowRow {
  positions: number;
  looked_at: string | null;
  streams: string[] | null;
  stream_indexes: Buffer | null;
  commits: Buffer | null;
  revisions: Buffer | null;
  hashes: Buffer | null;
  created_ms: Buffer | null;
}

export interface HashWindow {
  readonly events: HashedEventColumns;
  /** The last position looked at; undefined when the window was empty. */
  readonly lookedAt: bigint | undefined;
  readonly positions: number;
}

const littleEndian = os.endianness() === 'LE';

/**
 * A column of `count` big-endian numbers of `bytes` bytes each (as PostgreSQL's `int4send`,
 * `int8send` and `float8send` write them) in a typed array of this machine's order: one copy and, on
 * a little-endian machine, one swap of the whole column in place.
 */
const column = <T extends Uint32Array | BigUint64Array | Float64Array>(
  make: new (count: number) => T,
  bytes: 4 | 8,
  data: Buffer | null,
  count: number,
): T => {
  const values = new make(count);
  if ((data?.length ?? 0) !== count * bytes) {
    throw new Error(`a hash window column holds ${data?.length ?? 0} bytes for ${count} events`);
  }
  if (count === 0 || data === null) return values;
  const view = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  data.copy(view);
  if (littleEndian) {
    if (bytes === 4) view.swap32();
    else view.swap64();
  }
  return values;
};

export class EventReader {
  constructor(
    private readonly pool: pg.Pool,
    private readonly timeoutMs: number,
  ) {}

  /**
   * One statement on a pooled connection, bounded; a connection that failed or timed out is
   * discarded. Reads change nothing, so a connection found dead on use is retried once on a fresh one.
   */
  async query<Row extends pg.QueryResultRow>(
    sql: string,
    params: unknown[],
    doing: string,
    retryLostConnection = true,
  ): Promise<Row[]> {
    const client = await connectWithin(this.pool, this.timeoutMs, doing);
    let released = false;
    let timedOut = false;
    const discard = (reason: unknown) => {
      released = true;
      client.release(asError(reason));
    };
    try {
      const result = await withTimeout(client.query<Row>(sql, params), this.timeoutMs, doing, () => {
        timedOut = true;
        discard(new Error('query abandoned after timeout'));
      });
      return result.rows;
    } catch (error) {
      if (released || !isUnavailable(error)) throw error;
      discard(error);
      if (!retryLostConnection || timedOut) throw error;
      return this.query<Row>(sql, params, doing, false);
    } finally {
      if (!released) client.release();
    }
  }

  async streamPage(
    streamName: string,
    direction: 'forwards' | 'backwards',
    fromRevision: bigint,
    limit: number,
  ): Promise<RecordedEvent[]> {
    const rows = await this.query<EventRow>(
      direction === 'forwards' ? forwardsStreamPageSql : backwardsStreamPageSql,
      [streamName, fromRevision.toString(), limit],
      'reading a stream',
    );
    return rows.map(toRecordedEvent);
  }

  /**
   * Up to `limit` consecutive positions from `bound` (inclusive) in `direction`, each with its event
   * when the stream name starts with one of `prefixes`.
   */
  async window(
    direction: 'forwards' | 'backwards',
    bound: bigint,
    prefixes: readonly string[],
    limit: number,
  ): Promise<ScannedPosition[]> {
    const rows = await this.query<ScanRow>(
      direction === 'forwards' ? forwardsWindowSql : backwardsWindowSql,
      [bound.toString(), prefixes, limit],
      'reading $all',
    );
    return rows.map((row) => ({
      position: BigInt(row.position),
      event: row.matches ? toRecordedEvent(row) : undefined,
    }));
  }

  /**
   * Up to `limit` consecutive positions after `after`, with the hash recorded for each matching
   * event as it was written (computed where none was recorded).
   */
  async hashWindow(after: bigint, prefixes: readonly string[], limit: number): Promise<HashWindow> {
    const [row] = await this.query<HashWindowRow>(
      recordedHashWindowSql,
      [after.toString(), prefixes, limit],
      'reading event hashes',
    );
    if (row === undefined) throw new Error('the hash window query returned no row');
    const streams = row.streams ?? [];
    const hashes = row.hashes ?? Buffer.alloc(0);
    const count = hashes.length / eventHashBytes;
    if (!Number.isInteger(count)) throw new Error(`a hash window holds ${hashes.length} bytes of hashes`);
    const commits = column(BigUint64Array, 8, row.commits, count);
    const streamIndexes = column(Uint32Array, 4, row.stream_indexes, count);
    if (streamIndexes.some((stream) => stream >= streams.length))
      throw new Error(`a hash window numbers a stream past its ${streams.length} streams`);
    return {
      events: {
        count,
        hashes,
        streams,
        streamIndexes,
        commits,
        // One number per position in this store: the prepare position is the commit position.
        prepares: commits.slice(),
        revisions: column(BigUint64Array, 8, row.revisions, count),
        createdMs: column(Float64Array, 8, row.created_ms, count),
      },
      lookedAt: row.looked_at === null ? undefined : BigInt(row.looked_at),
      positions: row.positions,
    };
  }
}
