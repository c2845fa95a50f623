/**
 * Subscription failures on demand, for either event-store adapter: wraps a real store (everything
 * passes through to it) and lets a test drop its live subscriptions (iteration throws, as when the
 * store goes away) or silence them (iteration just stops delivering, as a stuck connection does).
 */
import {
  EventStoreUnavailableError,
  type EventStore,
  type Subscription,
  type SubscriptionMessage,
} from '../../src/event-store/event-store.ts';

interface Fault {
  drop(): void;
  silence(): void;
}

export interface FaultyEventStore {
  readonly eventStore: EventStore;
  /** Makes every open subscription throw; returns how many there were. */
  dropSubscriptions(): number;
  /** Makes every open subscription stop delivering without ending; returns how many there were. */
  silenceSubscriptions(): number;
  /** Subscriptions opened so far. */
  readonly subscriptionsOpened: number;
}

export const withSubscriptionFaults = (inner: EventStore): FaultyEventStore => {
  const open = new Set<Fault>();
  let opened = 0;

  const subscribeToAll: EventStore['subscribeToAll'] = (options) => {
    opened += 1;
    const subscription = inner.subscribeToAll(options);
    let dropped = false;
    let silent = false;
    let interrupt: () => void = () => {};
    const interrupted = new Promise<'interrupted'>((resolve) => {
      interrupt = () => resolve('interrupted');
    });
    let closed = false;
    const fault: Fault = {
      drop: () => {
        dropped = true;
        interrupt();
      },
      silence: () => {
        silent = true;
      },
    };
    open.add(fault);

    async function* messages(): AsyncGenerator<SubscriptionMessage> {
      const iterator = subscription[Symbol.asyncIterator]();
      try {
        for (;;) {
          const next = await Promise.race([iterator.next(), interrupted]);
          if (dropped) throw new EventStoreUnavailableError('subscription dropped by the test');
          if (closed || next === 'interrupted' || next.done === true) return;
          if (silent) {
            await interrupted;
            if (dropped) throw new EventStoreUnavailableError('subscription dropped by the test');
            return;
          }
          yield next.value;
        }
      } finally {
        open.delete(fault);
        await subscription.close();
      }
    }

    const wrapped: Subscription = {
      [Symbol.asyncIterator]: () => messages(),
      close: async () => {
        closed = true;
        interrupt();
        await subscription.close();
      },
    };
    return wrapped;
  };

  return {
    eventStore: {
      kind: inner.kind,
      reportsWrites: inner.reportsWrites,
      append: (...args) => inner.append(...args),
      readStream: (...args) => inner.readStream(...args),
      readAll: (...args) => inner.readAll(...args),
      subscribeToAll,
      ping: () => inner.ping(),
      close: () => inner.close(),
    },
    dropSubscriptions: () => {
      const count = open.size;
      for (const fault of open) fault.drop();
      return count;
    },
    silenceSubscriptions: () => {
      const count = open.size;
      for (const fault of open) fault.silence();
      return count;
    },
    get subscriptionsOpened() {
      return opened;
    },
  };
};
