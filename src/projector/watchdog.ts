/**
 * The lag watchdog: periodically measures how far each projection is behind the store (for
 * `/readyz`, the metrics and a periodic log line), and restarts a subscription that went silent
 * while the store's head moved on.
 */
import type pg from 'pg';
import {
  comparePositions,
  formatPosition,
  type EventStore,
  type GlobalPosition,
} from '../event-store/event-store.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { loadCheckpoint } from './checkpoints.ts';
import type { Feed } from './feed.ts';
import { measureLag, readStoreHead, type Lag } from './lag.ts';
import type { Projection } from '../../projections/projection.ts';

export interface LagWatchdog {
  readonly lag: (projection: Projection) => Lag;
  /** Resolves once a measurement that began after the call has finished (never a stale one). */
  readonly refreshLag: () => Promise<void>;
  /** Stops the periodic measurement and waits for the one in flight. */
  readonly stop: () => Promise<void>;
}

const formatCheckpoint = (position: GlobalPosition | undefined) =>
  position === undefined ? 'start' : formatPosition(position);

export const startLagWatchdog = (
  projections: readonly Projection[],
  dependencies: {
    readonly eventStore: EventStore;
    readonly pool: pg.Pool;
    readonly logger: Logger;
    readonly metrics: Metrics;
    readonly clock: () => Date;
    /** The subscription being followed, if any. */
    readonly feed: () => Feed | undefined;
    readonly stopping: () => boolean;
  },
  options: {
    readonly streamPrefixes: readonly string[];
    readonly watchdogIntervalMs: number;
    readonly stallTimeoutMs: number;
    readonly lagCountLimit: number;
    readonly lagLogIntervalMs: number;
  },
): LagWatchdog => {
  const { eventStore, pool, logger, metrics, clock } = dependencies;
  const lags = new Map<Projection, Lag>(
    projections.map((projection) => [
      projection,
      { caughtUp: false, lagEvents: 0, lagSeconds: 0, head: undefined },
    ]),
  );
  let lastLagLog = 0;

  let measuring: Promise<void> | undefined;
  let nextMeasurement: Promise<void> | undefined;
  const refreshLag = (): Promise<void> => {
    if (measuring === undefined) {
      measuring = measureAndWatch().finally(() => {
        measuring = undefined;
      });
      return measuring;
    }
    nextMeasurement ??= measuring.then(() => {
      nextMeasurement = undefined;
      return refreshLag();
    });
    return nextMeasurement;
  };

  const measureAndWatch = async (): Promise<void> => {
    if (dependencies.stopping()) return;
    try {
      const head = await readStoreHead(eventStore);
      const now = clock();
      const behind: Record<string, { lagEvents: number; lagSeconds: number }> = {};
      /** The newest position some projection still waits for: a subscription silent before it is stalled. */
      let pending: GlobalPosition | undefined;
      for (const projection of projections) {
        const checkpoint = await loadCheckpoint(pool, projection.name);
        const measured = await measureLag(eventStore, {
          streamPrefixes: options.streamPrefixes,
          checkpoint,
          now,
          countLimit: options.lagCountLimit,
          head,
        });
        lags.set(projection, measured);
        if (
          measured.head !== undefined &&
          (pending === undefined || comparePositions(measured.head, pending) > 0)
        )
          pending = measured.head;
        const labels = { projection: projection.name };
        metrics.projectionLagEvents.set(labels, measured.lagEvents);
        metrics.projectionLagSeconds.set(labels, measured.lagSeconds);
        if (!measured.caughtUp)
          behind[projection.name] = { lagEvents: measured.lagEvents, lagSeconds: measured.lagSeconds };
      }
      if (Object.keys(behind).length === 0) {
        lastLagLog = 0;
      } else if (now.getTime() - lastLagLog >= options.lagLogIntervalMs) {
        lastLagLog = now.getTime();
        logger.info({ behind }, 'projections behind');
      }
      const current = dependencies.feed();
      if (
        current !== undefined &&
        pending !== undefined &&
        current.waitingSince !== undefined &&
        now.getTime() - current.waitingSince >= options.stallTimeoutMs &&
        (current.lastSeen === undefined || comparePositions(pending, current.lastSeen) > 0)
      ) {
        logger.warn(
          {
            pending: formatPosition(pending),
            lastSeen: formatCheckpoint(current.lastSeen),
            silentForMs: now.getTime() - current.waitingSince,
          },
          'subscription silent while the store moved on; restarting it',
        );
        await current.close();
      }
    } catch (error) {
      logger.warn({ err: error }, 'could not measure projection lag');
    }
  };

  const timer = setInterval(() => void refreshLag(), options.watchdogIntervalMs);
  timer.unref();

  return {
    lag: (projection) => lags.get(projection)!,
    refreshLag,
    stop: async () => {
      clearInterval(timer);
      await nextMeasurement;
      await measuring;
    },
  };
};
