/**
 * Relay mode's Prometheus metrics: requests relayed by destination host, event type and outcome
 * (`answered`, or the failure kind), and how long the destination took. Every label value comes from
 * a bounded set: the configured destinations' hosts, the two relayed types and the failure kinds.
 */
import { Counter, Histogram, type Registry } from 'prom-client';

export const createRelayMetrics = (registry: Registry) => ({
  requests: new Counter({
    name: 'calltrail_relay_requests_total',
    help: 'Relayed requests by destination host, event type and outcome (answered, or the failure kind)',
    labelNames: ['destination', 'event_type', 'outcome'] as const,
    registers: [registry],
  }),
  fallbacks: new Counter({
    name: 'calltrail_relay_fallbacks_total',
    help: 'Relayed requests answered with the configured fallback, by destination host and event type',
    labelNames: ['destination', 'event_type'] as const,
    registers: [registry],
  }),
  latencySeconds: new Histogram({
    name: 'calltrail_relay_destination_duration_seconds',
    help: "Time from forwarding a relayed request to the destination's last byte (or its failure)",
    labelNames: ['destination', 'event_type'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  }),
});

export type RelayMetrics = ReturnType<typeof createRelayMetrics>;
