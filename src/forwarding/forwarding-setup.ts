/**
 * Forwarding from the configuration: the destinations (the relay's, when given, and the configured
 * ones) and the forwarder's settings. Used by `calltrail serve` and `calltrail forward`.
 */
import type pg from 'pg';
import { assistantRequestStreamPrefix, callStreamPrefix } from '../archive/streams.ts';
import type { Config } from '../config.ts';
import type { EventStore } from '../event-store/event-store.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { forwardingDestinations, type Destination } from './destinations.ts';
import { startForwarder, type ForwarderOptions, type RunningForwarder } from './forwarder.ts';

/** Accepted Flireo events are forwarded; quarantined requests and calltrail's own streams are not. */
export const forwardedStreamPrefixes = [callStreamPrefix, assistantRequestStreamPrefix];

export const forwarderOptionsFrom = (
  forwarding: Config['forwarding'],
  destinations: readonly Destination[],
): ForwarderOptions => ({
  destinations,
  secret: forwarding.secret ?? '',
  retry: forwarding.retry,
  timeoutMs: forwarding.timeoutMs,
  concurrency: forwarding.concurrency,
  pauseAfterFailures: forwarding.pauseAfterFailures,
  probeIntervalMs: forwarding.probeIntervalMs,
  excerptBytes: 4_096,
  streamPrefixes: forwardedStreamPrefixes,
  maxBatchEvents: 500,
  pollIntervalMs: 1_000,
  standbyPollMs: 2_000,
  restartInitialMs: 250,
  restartMaxMs: 30_000,
  payloadCacheBytes: 32 * 1024 * 1024,
});

/**
 * Starts the forwarder when there is anywhere to forward to; undefined otherwise. When calltrail
 * runs in line (relay mode), the relay's handler is a destination too. Throws naming the variable
 * when the destinations do not hold together.
 */
export const startForwarding = (
  config: Config,
  dependencies: {
    eventStore: EventStore;
    pool: pg.Pool;
    logger: Logger;
    metrics: Metrics;
  },
): RunningForwarder | undefined => {
  const destinations = forwardingDestinations(
    config.forwarding.destinations,
    config.relay?.url.href,
    config.forwarding.secret,
  );
  if (destinations.length === 0) return undefined;
  return startForwarder(
    { ...dependencies, clock: () => new Date() },
    forwarderOptionsFrom(config.forwarding, destinations),
  );
};
