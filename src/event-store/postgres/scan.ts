/**
 * Reading the events table: one bounded query per page, no long-lived transaction or cursor. The
 * $all scan reads a window of consecutive positions and flags which rows match the stream-prefix
 * filter, so a filtered reader always knows how far it has looked, even past events it skips.
 */
import pg from 'pg';
import type { HashedEvent, RecordedEvent } from '../event-store.ts';
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

const streamPageSql = `
  SELECT ${eventColumns}, data, metadata
    FROM event_store.events
   WHERE stream_name = $1 AND revision >= $2
   ORDER BY revision
   LIMIT $3`;

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
// (`stored-events.ts`). Only matching rows are hashed (and de-TOASTed); every row still says how far
// the look went.
const recordedHashWindowSql = `
  SELECT w.position::text AS position,
         CASE WHEN w.matches THEN w.stream_name END AS stream_name,
         CASE WHEN w.matches THEN w.revision::text END AS revision,
         CASE WHEN w.matches
              THEN encode(coalesce(w.hash, event_store.event_hash(w.stream_name, w.revision, w.event_id,
                                                                  w.event_type, w.data, w.metadata)), 'hex')
         END AS hash,
         CASE WHEN w.matches THEN floor(extract(epoch FROM w.created) * 1000)::float8 END AS created_ms
    FROM (SELECT e.*, e.stream_name ^@ ANY ($2::text[]) AS matches
            FROM event_store.events e
           WHERE e.position > $1
           ORDER BY e.position
           LIMIT $3) AS w
   ORDER BY w.position`;

interface HashRow {
  position: string;
  stream_name: string | null;
  revision: string | null;
  hash: string | null;
  created_ms: number | null;
}

export interface HashWindow {
  readonly events: HashedEvent[];
  /** The last position looked at; undefined when the window was empty. */
  readonly lookedAt: bigint | undefined;
  readonly positions: number;
}

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

  async streamPage(streamName: string, fromRevision: bigint, limit: number): Promise<RecordedEvent[]> {
    const rows = await this.query<EventRow>(
      streamPageSql,
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
    const rows = await this.query<HashRow>(
      recordedHashWindowSql,
      [after.toString(), prefixes, limit],
      'reading event hashes',
    );
    const events: HashedEvent[] = [];
    for (const row of rows) {
      if (row.hash === null) continue;
      const position = BigInt(row.position);
      events.push({
        position: positionOf(position),
        streamName: row.stream_name!,
        revision: BigInt(row.revision!),
        hash: row.hash,
        created: new Date(row.created_ms!),
      });
    }
    const last = rows.at(-1);
    return {
      events,
      lookedAt: last === undefined ? undefined : BigInt(last.position),
      positions: rows.length,
    };
  }
}
