/**
 * The EventStoreDB adapter's subscriptions to `$all`, over the client's subscription stream.
 */
import type { AllStreamResolvedEvent, AllStreamSubscription } from '@eventstore/db-client';
import {
  EventStoreUnavailableError,
  type GlobalPosition,
  type Subscription,
  type SubscriptionMessage,
} from './event-store.ts';
import { toRecordedEvent, translate } from './eventstoredb-events.ts';

/**
 * Adapts a client subscription to the port: events, checkpoints and `caught-up` in the order the
 * server sent them. The client reports checkpoints and `caughtUp` through callbacks, ahead of events
 * still in its buffer, so the buffer is drained into one queue before each of them is queued.
 */
export const openSubscription = (
  open: (
    checkpointReached: (_subscription: unknown, position: GlobalPosition) => void,
  ) => AllStreamSubscription,
  timeoutMs: number,
): Subscription => {
  const queue: SubscriptionMessage[] = [];
  let failure: Error | undefined;
  let ended = false;
  let closed = false;
  let confirmed = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    const resolve = wake;
    wake = undefined;
    resolve?.();
  };
  const highWater = 64;

  const pull = (force: boolean) => {
    while (force || queue.length < highWater) {
      const resolved = subscription.read() as AllStreamResolvedEvent | null;
      if (resolved === null) break;
      if (resolved.event) queue.push({ kind: 'event', event: toRecordedEvent(resolved.event) });
    }
    notify();
  };
  const subscription = open((_subscription, position) => {
    pull(true);
    queue.push({ kind: 'checkpoint', position: { commit: position.commit, prepare: position.prepare } });
    notify();
  });
  const confirmation = AbortSignal.timeout(timeoutMs);
  const unconfirmed = () => {
    if (confirmed || closed) return;
    failure ??= new EventStoreUnavailableError(
      `event store did not confirm a subscription within ${timeoutMs} ms`,
    );
    void subscription.unsubscribe().catch(() => undefined);
    notify();
  };
  confirmation.addEventListener('abort', unconfirmed, { once: true });
  subscription.on('confirmation', () => {
    confirmed = true;
    confirmation.removeEventListener('abort', unconfirmed);
  });
  subscription.on('caughtUp', () => {
    pull(true);
    queue.push({ kind: 'caught-up' });
    notify();
  });
  subscription.on('readable', () => pull(false));
  subscription.on('error', (error: unknown) => {
    const translated = translate(error, 'subscription to $all');
    failure ??= translated instanceof Error ? translated : new Error(String(translated));
    notify();
  });
  subscription.on('end', () => {
    ended = true;
    notify();
  });
  subscription.on('close', () => {
    ended = true;
    notify();
  });

  const close = async () => {
    if (closed) return;
    closed = true;
    confirmation.removeEventListener('abort', unconfirmed);
    notify();
    await subscription.unsubscribe().catch(() => undefined);
  };

  async function* messages(): AsyncGenerator<SubscriptionMessage> {
    try {
      for (;;) {
        if (closed) return;
        const next = queue.shift();
        if (next) {
          if (queue.length < highWater / 2) pull(false);
          yield next;
          continue;
        }
        if (failure !== undefined) throw failure;
        if (ended) throw new EventStoreUnavailableError('subscription to $all ended unexpectedly');
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    } finally {
      await close();
    }
  }

  return {
    [Symbol.asyncIterator]: () => messages(),
    close,
  };
};
