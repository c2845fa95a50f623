/**
 * Prometheus metrics, one registry per running calltrail (no global default registry, so tests and
 * several apps in one process never share counters). Served at `/metrics`.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const createMetrics = (options: { collectProcessMetrics?: boolean } = {}) => {
  const registry = new Registry();
  if (options.collectProcessMetrics ?? false)
    collectDefaultMetrics({ register: registry, prefix: 'calltrail_' });
  return {
    registry,
    webhooks: new Counter({
      name: 'calltrail_webhooks_total',
      help: 'Webhook requests by outcome (accepted, journaled, duplicate, quarantined, unauthorized, rejected, unavailable)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    appendSeconds: new Histogram({
      name: 'calltrail_append_duration_seconds',
      help: 'Time to durably append one webhook event, including duplicate checks and retries',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    projectionLagEvents: new Gauge({
      name: 'calltrail_projection_lag_events',
      help: 'Events in the store not yet applied, per projection',
      labelNames: ['projection'] as const,
      registers: [registry],
    }),
    projectionLagSeconds: new Gauge({
      name: 'calltrail_projection_lag_seconds',
      help: 'Age of the oldest stored event not yet applied, per projection (0 when caught up)',
      labelNames: ['projection'] as const,
      registers: [registry],
    }),
    projectedEvents: new Counter({
      name: 'calltrail_projected_events_total',
      help: 'Events applied, per projection',
      labelNames: ['projection'] as const,
      registers: [registry],
    }),
    deadLetters: new Counter({
      name: 'calltrail_projection_dead_letters_total',
      help: 'Events a projection could not apply and recorded as dead letters',
      labelNames: ['projection'] as const,
      registers: [registry],
    }),
    exports: new Counter({
      name: 'calltrail_exports_total',
      help: 'CSV exports by kind and outcome',
      labelNames: ['kind', 'outcome'] as const,
      registers: [registry],
    }),
    exportedRows: new Counter({
      name: 'calltrail_exported_rows_total',
      help: 'Rows written by CSV exports',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    forwardingDeliveries: new Counter({
      name: 'calltrail_forwarding_deliveries_total',
      help: 'Forwarded deliveries by destination and outcome (recorded, delivered, failed, cancelled)',
      labelNames: ['destination', 'outcome'] as const,
      registers: [registry],
    }),
    forwardingAttempts: new Counter({
      name: 'calltrail_forwarding_attempts_total',
      help: 'Delivery attempts by destination and outcome (delivered, retry, failed)',
      labelNames: ['destination', 'outcome'] as const,
      registers: [registry],
    }),
    forwardingAttemptSeconds: new Histogram({
      name: 'calltrail_forwarding_attempt_duration_seconds',
      help: 'Time of one delivery attempt, by destination',
      labelNames: ['destination'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
  };
};

export type Metrics = ReturnType<typeof createMetrics>;
