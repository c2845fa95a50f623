/**
 * Seeds the archive: N events of synthetic Flireo traffic, exactly as ingest would have stored them
 * (see `archivedRecordOf`), written with one `COPY` into the event-store table. The table's own
 * statement triggers (append lock, notification) run as for any insert, positions come from its
 * identity column in arrival order, and revisions follow arrival within each call's stream.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { openPostgresEventStore } from '../src/event-store/postgres/postgres-event-store.ts';
import { archivedRecordOf, trafficTimeline } from './flireo-traffic.ts';

export interface DatasetSummary {
  readonly events: number;
  readonly calls: number;
  /** Calls with an ending status or an end-of-call report: the rows the terminations table gets. */
  readonly endedCalls: number;
  readonly eventsByType: Readonly<Record<string, number>>;
  readonly bytes: number;
  readonly firstEventAt: string;
  readonly lastEventAt: string;
  readonly seedSeconds: number;
}

/** The dataset spans 30 days from here, so time-window queries have something to select. */
export const datasetStart = Date.parse('2026-01-05T00:00:00.000Z');
export const datasetSpanMs = 30 * 86_400_000;
const eventsPerCall = 4.4;

// COPY's text format: backslash starts an escape, tab and newline separate.
const copyText = (value: string): string =>
  /[\\\t\n\r]/.test(value)
    ? value.replace(/[\\\t\n\r]/g, (c) =>
        c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r',
      )
    : value;

export const seedArchive = async (
  url: string,
  events: number,
  progress: (done: number) => void,
): Promise<DatasetSummary> => {
  // Opening the store applies its migrations; the seed then writes the table directly.
  const store = await openPostgresEventStore(url, { timeoutMs: 30_000 });
  await store.close();

  const started = performance.now();
  const client = new pg.Client(url);
  await client.connect();
  const revisions = new Map<string, number>();
  const ended = new Set<string>();
  const eventsByType: Record<string, number> = {};
  let bytes = 0;
  let firstEventAt = '';
  let lastEventAt = '';
  try {
    await client.query('BEGIN');
    const copy = client.query(
      copyFrom(
        'COPY event_store.events (stream_name, revision, event_id, event_type, data, metadata) FROM STDIN',
      ),
    );
    const copied = new Promise<void>((resolve, reject) => {
      copy.on('finish', resolve);
      copy.on('error', reject);
    });
    let chunk = '';
    let written = 0;
    for (const delivery of trafficTimeline({
      seed: 20260105,
      startMs: datasetStart,
      spanMs: datasetSpanMs,
      expectedCalls: Math.ceil(events / eventsPerCall),
      callIdPrefix: 'call-',
    })) {
      if (written === events) break;
      const record = archivedRecordOf(delivery, randomUUID());
      const revision = revisions.get(record.streamName) ?? 0;
      revisions.set(record.streamName, revision + 1);
      if (
        record.data.eventType === 'end-of-call-report' ||
        record.data.status === 'ended' ||
        record.data.status === 'ended-with-debugging'
      ) {
        ended.add(record.streamName);
      }
      eventsByType[record.eventType] = (eventsByType[record.eventType] ?? 0) + 1;
      const data = JSON.stringify(record.data);
      const metadata = JSON.stringify(record.metadata);
      bytes += data.length + metadata.length;
      firstEventAt ||= record.metadata.receivedAt;
      lastEventAt = record.metadata.receivedAt;
      chunk += `${copyText(record.streamName)}\t${revision}\t${record.eventId}\t${record.eventType}\t${copyText(data)}\t${copyText(metadata)}\n`;
      written += 1;
      if (chunk.length >= 1 << 20) {
        if (!copy.write(chunk)) await once(copy, 'drain');
        chunk = '';
        progress(written);
      }
    }
    copy.end(chunk);
    await copied;
    await client.query('COMMIT');
    progress(written);
    // Fresh statistics, as autovacuum would have them on a live archive.
    await client.query('ANALYZE event_store.events');
    return {
      events: written,
      calls: revisions.size,
      endedCalls: ended.size,
      eventsByType,
      bytes,
      firstEventAt,
      lastEventAt,
      seedSeconds: (performance.now() - started) / 1000,
    };
  } finally {
    await client.end();
  }
};
