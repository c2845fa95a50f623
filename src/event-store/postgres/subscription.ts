/**
 * Catch-up subscriptions to $all on PostgreSQL. Catch-up and live are the same loop: read the window
 * of positions after the last one looked at, deliver the matching events, repeat; live only adds
 * waiting for a notification (or the poll interval) when a read comes back short. Because positions
 * become visible in order (the append lock), "after the last position looked at" can never skip a
 * commit that lands later, and the handover from catch-up to live has no gap and no duplicate.
 */
import type { SubscribeToAllOptions, Subscription, SubscriptionMessage } from '../event-store.ts';
import type { ChangeListener } from './change-listener.ts';
import { translateError } from './errors.ts';
import { exclusiveLowerBound, maxStoredPosition, positionOf } from './positions.ts';
import type { EventReader } from './scan.ts';
import { validateSubscribeOptions } from './validation.ts';

export interface SubscriptionSettings {
  /** Positions read per query. */
  readonly pageSize: number;
  /** A checkpoint after this many considered events, as EventStoreDB does for filtered reads. */
  readonly checkpointInterval: number;
  /** How long a live subscription waits for a notification before reading anyway. */
  readonly pollIntervalMs: number;
}

export const openSubscription = (
  reader: EventReader,
  listener: ChangeListener,
  options: SubscribeToAllOptions,
  settings: SubscriptionSettings,
  onClose: (subscription: Subscription) => void,
): Subscription => {
  const closing = new AbortController();

  async function* messages(): AsyncGenerator<SubscriptionMessage> {
    const { after, streamPrefixes: prefixes } = validateSubscribeOptions(options);
    let lookedAt = exclusiveLowerBound(after);
    let sinceCheckpoint = 0;
    let caughtUp = false;
    try {
      // Listening starts before the first read, so no commit can fall between a read and the wait.
      const session = await listener.session();
      while (!closing.signal.aborted) {
        const version = session.version;
        const window =
          lookedAt >= maxStoredPosition
            ? []
            : await reader.window('forwards', lookedAt + 1n, prefixes, settings.pageSize);
        for (const scanned of window) {
          if (closing.signal.aborted) return;
          lookedAt = scanned.position;
          sinceCheckpoint += 1;
          if (scanned.event) yield { kind: 'event', event: scanned.event };
          if (sinceCheckpoint >= settings.checkpointInterval) {
            sinceCheckpoint = 0;
            yield { kind: 'checkpoint', position: positionOf(lookedAt) };
          }
        }
        if (closing.signal.aborted) return;
        if (window.length === settings.pageSize) continue;
        if (!caughtUp) {
          caughtUp = true;
          if (sinceCheckpoint > 0) {
            sinceCheckpoint = 0;
            yield { kind: 'checkpoint', position: positionOf(lookedAt) };
          }
          yield { kind: 'caught-up' };
          continue;
        }
        await session.waitForChange(version, settings.pollIntervalMs, closing.signal);
      }
    } catch (error) {
      if (closing.signal.aborted) return;
      throw translateError(error, 'subscribing to $all');
    } finally {
      onClose(subscription);
    }
  }

  let iterator: AsyncGenerator<SubscriptionMessage> | undefined;
  const subscription: Subscription = {
    [Symbol.asyncIterator]: () => (iterator ??= messages()),
    close: async () => {
      closing.abort();
      onClose(subscription);
    },
  };
  return subscription;
};
