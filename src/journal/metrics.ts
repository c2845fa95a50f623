/**
 * The journal's Prometheus metrics, read from its status when `/metrics` is scraped.
 */
import { Gauge, type Registry } from 'prom-client';
import type { JournalStatus } from './durable-archive.ts';

export const registerJournalMetrics = (registry: Registry, status: () => JournalStatus): void => {
  const gauge = (name: string, help: string, read: (status: JournalStatus) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read(status()));
      },
    });
  gauge('calltrail_journal_depth_events', 'Events in the outage journal not yet drained', (s) => s.depth);
  gauge(
    'calltrail_journal_bytes',
    'Bytes the outage journal holds, as counted against its limit',
    (s) => s.bytes,
  );
  gauge('calltrail_journal_max_bytes', 'The outage journal size limit', (s) => s.maxBytes);
  gauge(
    'calltrail_journal_oldest_age_seconds',
    'Age of the oldest journaled event not yet drained (0 when empty)',
    (s) => s.oldestAgeSeconds,
  );
  gauge(
    'calltrail_journal_drain_rate_events_per_second',
    'Journaled events stored per second by the drain, over the last seconds',
    (s) => s.drainRatePerSecond,
  );
  gauge('calltrail_journal_journaling', '1 while new events go to the journal (the store failed)', (s) =>
    s.journaling ? 1 : 0,
  );
  // Totals since start, as gauges read from the archive's own counts (rate() works on them as well).
  gauge('calltrail_journal_journaled_events', 'Events journaled since start', (s) => s.journaledTotal);
  gauge(
    'calltrail_journal_drained_events',
    'Journaled events stored by the drain since start',
    (s) => s.drainedTotal,
  );
  gauge(
    'calltrail_journal_set_aside_records',
    'Journal records that could not be drained and were kept aside (see the log)',
    (s) => s.setAsideTotal,
  );
};
