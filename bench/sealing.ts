/**
 * Sealing and verification over the archive data set, beside the ceiling of merely reading the same
 * events back in global order (what both must do at the least), in the same run: the sealer from an
 * empty digest stream until the last digest covers the archive's newest event (events/s), then
 * `verify` of everything against those digests (events/s). Targets: sealing >= 50,000 events/s,
 * verify >= 100,000 events/s.
 */
import pg from 'pg';
import { archiveStreamPrefixes } from '../src/archive/streams.ts';
import { formatPosition, type GlobalPosition } from '../src/event-store/event-store.ts';
import { openPostgresEventStore } from '../src/event-store/postgres/postgres-event-store.ts';
import { createLogger } from '../src/logger.ts';
import { readDigestEvents } from '../src/sealing/digest-stream.ts';
import { startSealer } from '../src/sealing/sealer.ts';
import { generateSigningKey } from '../src/sealing/signing-key.ts';
import { verifyArchive } from '../src/sealing/verify.ts';
import type { BenchContext } from './context.ts';
import { formatRate, type BenchmarkResult } from './report.ts';

const sealingTarget = 50_000;
const verifyTarget = 100_000;
/** Bound on waiting for the sealer: far beyond what the target rate needs. */
const sealBoundMs = (events: number) => Math.max(120_000, (events / 1_000) * 1_000);

export const benchSealing = async (context: BenchContext): Promise<BenchmarkResult> => {
  const { url, summary } = await context.dataset();
  const eventStore = await openPostgresEventStore(url, { timeoutMs: 60_000 });
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => {});
  try {
    context.progress('sealing: reading the archive back (the ceiling)');
    let readStarted = performance.now();
    let events = 0;
    let head: GlobalPosition | undefined;
    for await (const event of eventStore.readAll({ streamPrefixes: archiveStreamPrefixes })) {
      events += 1;
      head = event.position;
    }
    const readSeconds = (performance.now() - readStarted) / 1000;
    if (head === undefined) throw new Error('the data set is empty');
    const headText = formatPosition(head);

    context.progress(`sealing: sealing ${events.toLocaleString('en-US')} events`);
    const key = generateSigningKey();
    const sealStarted = performance.now();
    const sealer = startSealer(
      { eventStore, pool, key, logger: createLogger({ level: 'silent' }), clock: () => new Date() },
      {
        streamPrefixes: archiveStreamPrefixes,
        maxEvents: 1_000,
        maxSeconds: 1,
        digestDirectory: undefined,
        standbyPollMs: 100,
        retryInitialMs: 50,
        retryMaxMs: 1_000,
      },
    );
    let sealSeconds: number;
    try {
      const deadline = Date.now() + sealBoundMs(events);
      while (sealer.lastDigest?.lastPosition !== headText) {
        if (Date.now() > deadline) throw new Error('the sealer did not seal the data set in time');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      sealSeconds = (performance.now() - sealStarted) / 1000;
    } finally {
      await sealer.stop();
    }

    context.progress('sealing: verifying everything');
    readStarted = performance.now();
    const report = await verifyArchive(eventStore, {
      digests: (async function* () {
        for await (const entry of readDigestEvents(eventStore))
          yield { where: `revision ${entry.revision}`, type: entry.type, data: entry.data };
      })(),
      keys: new Map([[key.keyId, key]]),
      scope: { kind: 'all' },
      streamPrefixes: archiveStreamPrefixes,
      unsealedGraceMs: Number.MAX_SAFE_INTEGER,
      now: new Date(),
      checkStreams: false,
    });
    const verifySeconds = (performance.now() - readStarted) / 1000;
    if (!report.ok || report.eventsChecked !== events) {
      throw new Error(
        `verify did not pass over the sealed data set: ${JSON.stringify(report).slice(0, 500)}`,
      );
    }
    const readRate = events / readSeconds;
    const sealRate = events / sealSeconds;
    const verifyRate = events / verifySeconds;
    return {
      name: 'sealing',
      rows: [
        {
          measure: 'sealing rate (sealer from scratch)',
          value: formatRate(sealRate, 'events'),
          ceiling: formatRate(readRate, 'events read'),
          ratio: sealRate / readRate,
          target: {
            description: `>= ${sealingTarget.toLocaleString('en-US')} events/s`,
            pass: sealRate >= sealingTarget,
          },
        },
        {
          measure: 'verify rate (everything)',
          value: formatRate(verifyRate, 'events'),
          ceiling: formatRate(readRate, 'events read'),
          ratio: verifyRate / readRate,
          target: {
            description: `>= ${verifyTarget.toLocaleString('en-US')} events/s`,
            pass: verifyRate >= verifyTarget,
          },
        },
      ],
      details: {
        events,
        calls: summary.calls,
        digests: report.digests,
        readSeconds,
        sealSeconds,
        verifySeconds,
      },
      notes: [
        'ingest throughput with the sealer beside it is not measured by this benchmark yet',
        ...(events < 1_000_000
          ? [`measured over ${events.toLocaleString('en-US')} events, not the 1,000,000 of the targets`]
          : []),
      ],
    };
  } finally {
    await eventStore.close();
    await pool.end();
  }
};
