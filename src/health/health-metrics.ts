/**
 * The health figures as Prometheus gauges, so alerts can use them: computed at scrape time over the
 * last `CALLTRAIL_HEALTH_METRICS_WINDOW_SECONDS`, at most once per `refreshSeconds` whatever the
 * scrape rate (scrapes in between get the figures of the last computation). Label values are
 * bounded: the largest artifact groups and ended reasons only, the rest summed under `other`;
 * the busiest assistants only. A failed computation keeps the previous values and counts a failure.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { HealthFigures } from './health-queries.ts';

export const refreshSeconds = 15;
export const metricArtifactGroups = 10;
export const metricEndedReasons = 10;
export const metricAssistants = 20;
const maxLabelLength = 120;

/** A reason Flireo sends is a short slug; anything else (or too long) is not a label value. */
const reasonLabel = (reason: string | null): string =>
  reason === null ? 'none' : /^[A-Za-z0-9_.-]{1,64}$/.test(reason) ? reason : 'other';

const groupLabel = (group: string | null): string =>
  group === null ? 'none' : group.length > maxLabelLength ? `${group.slice(0, maxLabelLength)}…` : group;

export interface HealthMetricsSource {
  /** The figures over the window ending now (`groups` largest groups listed). */
  read(): Promise<HealthFigures>;
  readonly now: () => Date;
}

const sum = (values: readonly number[]) => values.reduce((total, value) => total + value, 0);

/** Registers the gauges once per registry. */
export const registerHealthMetrics = (registry: Registry, source: HealthMetricsSource): void => {
  if (registry.getSingleMetric('calltrail_health_calls') !== undefined) return;
  let last: { at: number; figures: HealthFigures | undefined } | undefined;
  let refreshing: Promise<HealthFigures | undefined> | undefined;
  const refreshFailures = new Counter({
    name: 'calltrail_health_refresh_failures_total',
    help: 'Health metric computations that failed (the previous values were kept)',
    registers: [registry],
  });
  const current = (): Promise<HealthFigures | undefined> => {
    const now = source.now().getTime();
    if (last !== undefined && now - last.at < refreshSeconds * 1000) return Promise.resolve(last.figures);
    refreshing ??= source
      .read()
      .then(
        (figures) => {
          last = { at: now, figures };
          return figures;
        },
        () => {
          refreshFailures.inc();
          last = { at: now, figures: last?.figures };
          return last.figures;
        },
      )
      .finally(() => {
        refreshing = undefined;
      });
    return refreshing;
  };

  new Gauge({
    name: 'calltrail_health_calls',
    help: 'Calls in the health window: started (first event), ended, failed (ended with an error)',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      const figures = await current();
      if (!figures) return;
      this.reset();
      this.set({ state: 'started' }, sum(figures.volume.started));
      this.set({ state: 'ended' }, sum(figures.volume.ended));
      this.set({ state: 'failed' }, sum(figures.volume.failed));
    },
  });
  new Gauge({
    name: 'calltrail_health_failures_by_artifact',
    help: `Failures in the health window per debugging-artifact group (the ${metricArtifactGroups} largest; the rest as "other")`,
    labelNames: ['artifact_group'] as const,
    registers: [registry],
    async collect() {
      const figures = await current();
      if (!figures) return;
      this.reset();
      const shown = figures.failures.byArtifact.slice(0, metricArtifactGroups);
      for (const group of shown) this.set({ artifact_group: groupLabel(group.artifactGroup) }, group.count);
      this.set({ artifact_group: 'other' }, figures.failures.total - sum(shown.map((group) => group.count)));
    },
  });
  new Gauge({
    name: 'calltrail_health_failures_by_ended_reason',
    help: `Failures in the health window per ended reason (the ${metricEndedReasons} most frequent; the rest, and any that is not a short slug, as "other"; "none" without one)`,
    labelNames: ['ended_reason'] as const,
    registers: [registry],
    async collect() {
      const figures = await current();
      if (!figures) return;
      this.reset();
      let other = figures.failures.total;
      for (const group of figures.failures.byEndedReason.slice(0, metricEndedReasons)) {
        const label = reasonLabel(group.endedReason);
        if (label === 'other') continue;
        this.set({ ended_reason: label }, group.count);
        other -= group.count;
      }
      this.set({ ended_reason: 'other' }, other);
    },
  });
  new Gauge({
    name: 'calltrail_health_call_duration_seconds',
    help: `Duration percentiles of calls ended in the health window, per assistant (the ${metricAssistants} busiest)`,
    labelNames: ['assistant', 'quantile'] as const,
    registers: [registry],
    async collect() {
      const figures = await current();
      if (!figures) return;
      this.reset();
      for (const entry of figures.durations.slice(0, metricAssistants)) {
        const assistant = entry.assistant ?? 'none';
        this.set({ assistant, quantile: '0.5' }, entry.p50);
        this.set({ assistant, quantile: '0.95' }, entry.p95);
        this.set({ assistant, quantile: '0.99' }, entry.p99);
      }
    },
  });
  new Gauge({
    name: 'calltrail_health_stale_calls',
    help: 'Calls still in progress more than CALLTRAIL_HEALTH_STALE_CALL_SECONDS after their last event, that event within the health window before that threshold (a missed webhook)',
    registers: [registry],
    async collect() {
      const figures = await current();
      if (!figures) return;
      this.set(figures.staleCalls.total);
    },
  });
  new Gauge({
    name: 'calltrail_health_window_seconds',
    help: 'The period the health metrics cover, ending at their computation',
    registers: [registry],
    async collect() {
      const figures = await current();
      if (!figures) return;
      this.set((figures.to.getTime() - figures.from.getTime()) / 1000);
    },
  });
};
