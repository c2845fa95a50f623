/**
 * A subscription read ahead into a bounded queue, so the runner can take whatever has arrived as one
 * batch while the next one is on its way (and a slow database pushes back on the subscription
 * instead of buffering without limit). It also tells the watchdog when the subscription last moved.
 */
import type {
  GlobalPosition,
  RecordedEvent,
  Subscription,
  SubscriptionMessage,
} from '../event-store/event-store.ts';
import { setTimeout as delay } from 'node:timers/promises';
import { laterPosition } from './checkpoints.ts';

export interface Feed {
  /**
   * Waits for at least one message and returns up to `max`. Returns [] once the feed is closed;
   * throws the subscription's error once it dropped and everything before the drop was taken.
   */
  take(max: number): Promise<SubscriptionMessage[]>;
  /** `take`, but gives up with `'idle'` once `idleMs` passed without a message. */
  takeWithin(max: number, idleMs: number): Promise<SubscriptionMessage[] | 'idle'>;
  /** Ends the subscription; a `take` in progress returns []. Messages not yet taken are dropped. */
  close(): Promise<void>;
  /** The position of the last event or checkpoint received. */
  readonly lastSeen: GlobalPosition | undefined;
  /** Since when the subscription has been asked for its next message without answering. */
  readonly waitingSince: number | undefined;
}

/** What a batch of messages taken from a feed amounts to. */
export interface FeedBatch {
  readonly events: RecordedEvent[];
  /** The last position the batch reaches, by an event or a checkpoint; undefined when neither. */
  readonly through: GlobalPosition | undefined;
  /** The subscription reported having caught up with the store within this batch. */
  readonly caughtUp: boolean;
}

export const feedBatch = (messages: readonly SubscriptionMessage[]): FeedBatch => {
  const events: RecordedEvent[] = [];
  let through: GlobalPosition | undefined;
  let caughtUp = false;
  for (const message of messages) {
    if (message.kind === 'event') {
      events.push(message.event);
      through = laterPosition(through, message.event.position);
    } else if (message.kind === 'checkpoint') {
      through = laterPosition(through, message.position);
    } else {
      caughtUp = true;
    }
  }
  return { events, through, caughtUp };
};

const closeTimeoutMs = 5_000;

const settleWithin = async (work: Promise<unknown>, ms: number): Promise<void> => {
  const settled = new AbortController();
  await Promise.race([
    work.catch(() => {}),
    delay(ms, undefined, { signal: settled.signal }).catch(() => {}),
  ]);
  settled.abort();
};

export class SubscriptionEndedError extends Error {
  override readonly name = 'SubscriptionEndedError';
}

export const openFeed = (
  subscription: Subscription,
  options: { highWater: number; start: GlobalPosition | undefined; now: () => number },
): Feed => {
  const queue: SubscriptionMessage[] = [];
  let closed = false;
  let ended = false;
  let failure: unknown;
  let lastSeen = options.start;
  let waitingSince: number | undefined = options.now();
  let wakeConsumer: (() => void) | undefined;
  let wakePump: (() => void) | undefined;

  const notifyConsumer = () => {
    wakeConsumer?.();
    wakeConsumer = undefined;
  };

  const pump = (async () => {
    try {
      for await (const message of subscription) {
        if (closed) break;
        queue.push(message);
        if (message.kind === 'event') lastSeen = message.event.position;
        else if (message.kind === 'checkpoint') lastSeen = message.position;
        notifyConsumer();
        if (queue.length >= options.highWater) {
          // Waiting for the database is not the subscription stalling.
          waitingSince = undefined;
          await new Promise<void>((resolve) => {
            wakePump = resolve;
          });
          if (closed) break;
        }
        waitingSince = options.now();
      }
      if (!closed) failure = new SubscriptionEndedError('the subscription ended without being closed');
    } catch (error) {
      if (!closed) failure = error;
    } finally {
      ended = true;
      waitingSince = undefined;
      notifyConsumer();
    }
  })();

  const next = async (max: number, idleMs?: number): Promise<SubscriptionMessage[] | 'idle'> => {
    const deadline = idleMs === undefined ? undefined : options.now() + idleMs;
    while (queue.length === 0 && !ended && !closed) {
      const woken = new Promise<void>((resolve) => {
        wakeConsumer = resolve;
      });
      if (deadline === undefined) {
        await woken;
      } else {
        const idle = new AbortController();
        await Promise.race([
          woken,
          delay(Math.max(0, deadline - options.now()), undefined, { signal: idle.signal }).catch(() => {}),
        ]);
        idle.abort();
      }
      if (deadline !== undefined && queue.length === 0 && !ended && !closed && options.now() >= deadline) {
        return 'idle';
      }
    }
    if (closed) return [];
    if (queue.length > 0) {
      const taken = queue.splice(0, max);
      if (queue.length < options.highWater) {
        wakePump?.();
        wakePump = undefined;
      }
      return taken;
    }
    throw failure instanceof Error
      ? failure
      : new SubscriptionEndedError('the subscription failed', { cause: failure });
  };

  return {
    take: async (max) => {
      const taken = await next(max);
      return taken === 'idle' ? [] : taken;
    },
    takeWithin: next,
    close: async () => {
      if (closed) return;
      closed = true;
      queue.length = 0;
      notifyConsumer();
      wakePump?.();
      wakePump = undefined;
      // A subscription that went silent may never answer its close either: give up waiting, since
      // nothing it delivers after this point is used.
      await settleWithin(subscription.close(), closeTimeoutMs);
      await settleWithin(pump, closeTimeoutMs);
    },
    get lastSeen() {
      return lastSeen;
    },
    get waitingSince() {
      return waitingSince;
    },
  };
};
