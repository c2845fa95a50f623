/**
 * The live feed: one subscription to the event store per process, fanned out to every connected
 * client (the console's pages, customers' dashboards). Like the projector, it follows `$all` from a
 * position and, when the subscription drops, resubscribes after the last event it saw, with backoff;
 * unlike the projector it keeps no checkpoint and needs no leader (every process serves its own
 * clients, and each client says where it is with its last position).
 *
 * A client that reconnects with a position first reads what it missed from the store, in pages,
 * while live events queue for it; the two meet without a gap or a duplicate (positions decide).
 * Every client has a bounded buffer: one that cannot keep up is dropped, never allowed to grow
 * memory.
 */
import {
  comparePositions,
  formatPosition,
  type EventStore,
  type GlobalPosition,
  type RecordedEvent,
  type Subscription,
} from '../event-store/event-store.ts';
import type { Logger } from '../logger.ts';

export interface LiveClient {
  /** Whether this client wants the event (its filters). */
  wants(event: RecordedEvent): boolean;
  /** Hands the event on; returns false when the client is too far behind and must be dropped. */
  deliver(event: RecordedEvent): boolean;
  /** Called once when the feed drops the client: too slow, or the feed is closing. */
  drop(reason: 'slow' | 'closing'): void;
}

export interface LiveFeedOptions {
  readonly streamPrefixes: readonly string[];
  /** Live events held for a client while it catches up from the store; past it, it is dropped. */
  readonly maxPendingEvents: number;
  readonly catchUpPageSize: number;
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
}

export interface LiveConnection {
  /** Resolves once the client is live (its missed events, if any, delivered). */
  readonly ready: Promise<void>;
  close(): void;
}

export interface LiveFeed {
  /**
   * Where a new client starts: the last position the feed has followed to, or else the store's
   * newest. Connecting after it (or after nothing, when the store has no event yet) misses nothing
   * stored from now on, however long the subscription takes to start; throws when the store cannot
   * be read.
   */
  startPosition(): Promise<GlobalPosition | undefined>;
  /** Connects a client, from now or after `after` (exclusive). */
  connect(client: LiveClient, after: GlobalPosition | undefined): LiveConnection;
  readonly clientCount: number;
  close(): Promise<void>;
}

interface Member {
  readonly client: LiveClient;
  /** While catching up: live events that arrived meanwhile, in order. */
  pending: RecordedEvent[] | undefined;
  last: GlobalPosition | undefined;
  closed: boolean;
}

const later = (position: GlobalPosition, than: GlobalPosition | undefined): boolean =>
  than === undefined || comparePositions(position, than) > 0;

export const openLiveFeed = (eventStore: EventStore, logger: Logger, options: LiveFeedOptions): LiveFeed => {
  const members = new Set<Member>();
  let subscription: Subscription | undefined;
  let following: Promise<void> | undefined;
  let stopping = false;
  /** The position the running subscription has followed to, once it has one. */
  let followedTo: GlobalPosition | undefined;
  let wake: () => void = () => {};

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const remove = (member: Member) => {
    member.closed = true;
    members.delete(member);
    if (members.size === 0) void stopFollowing();
  };

  const hand = (member: Member, event: RecordedEvent) => {
    if (member.closed || !later(event.position, member.last)) return;
    member.last = event.position;
    if (!member.client.wants(event)) return;
    if (!member.client.deliver(event)) {
      remove(member);
      member.client.drop('slow');
    }
  };

  const publish = (event: RecordedEvent) => {
    for (const member of members) {
      if (member.pending === undefined) hand(member, event);
      else if (member.pending.length < options.maxPendingEvents) member.pending.push(event);
      else {
        remove(member);
        member.client.drop('slow');
      }
    }
  };

  /** The newest position among the streams followed, so a new subscription starts from now. */
  const head = async (): Promise<GlobalPosition | undefined> => {
    for await (const event of eventStore.readAll({
      streamPrefixes: options.streamPrefixes,
      direction: 'backwards',
      maxCount: 1,
    }))
      return event.position;
    return undefined;
  };

  const follow = async (): Promise<void> => {
    let lastSeen: GlobalPosition | undefined;
    let started = false;
    let backoff = options.retryInitialMs;
    while (!stopping && members.size > 0) {
      try {
        if (!started) {
          lastSeen = await head();
          started = true;
          followedTo = lastSeen;
        }
        const current = eventStore.subscribeToAll({
          streamPrefixes: options.streamPrefixes,
          ...(lastSeen ? { after: lastSeen } : {}),
        });
        subscription = current;
        for await (const message of current) {
          if (stopping || members.size === 0) break;
          if (message.kind !== 'event') continue;
          lastSeen = message.event.position;
          followedTo = lastSeen;
          backoff = options.retryInitialMs;
          publish(message.event);
        }
        await current.close();
      } catch (error) {
        if (stopping || members.size === 0) break;
        logger.warn(
          { err: error, after: lastSeen && formatPosition(lastSeen), retryInMs: backoff },
          'live feed subscription failed; resubscribing',
        );
        await sleep(backoff);
        backoff = Math.min(backoff * 2, options.retryMaxMs);
      } finally {
        subscription = undefined;
      }
    }
  };

  const startFollowing = () => {
    if (following !== undefined || stopping) return;
    following = follow().finally(() => {
      following = undefined;
      // Whatever is stored until the next subscription starts is not followed.
      followedTo = undefined;
      // A client may have connected while the last subscription was closing.
      if (members.size > 0 && !stopping) startFollowing();
    });
  };

  const stopFollowing = async () => {
    wake();
    await subscription?.close();
  };

  /** Reads what the client missed, in pages (a slow client never holds a store read open). */
  const catchUp = async (member: Member, after: GlobalPosition): Promise<void> => {
    let from = after;
    for (;;) {
      const page: RecordedEvent[] = [];
      for await (const event of eventStore.readAll({
        from,
        streamPrefixes: options.streamPrefixes,
        maxCount: options.catchUpPageSize + 1,
      }))
        if (comparePositions(event.position, from) > 0) page.push(event);
      for (const event of page) hand(member, event);
      if (member.closed || page.length === 0) return;
      from = page.at(-1)!.position;
    }
  };

  return {
    startPosition: async () => followedTo ?? (await head()),
    connect: (client, after) => {
      const member: Member = { client, pending: after ? [] : undefined, last: after, closed: false };
      members.add(member);
      startFollowing();
      const ready = (async () => {
        if (!after) return;
        try {
          await catchUp(member, after);
        } finally {
          const pending = member.pending ?? [];
          member.pending = undefined;
          for (const event of pending) hand(member, event);
        }
      })();
      ready.catch(() => remove(member));
      return { ready, close: () => remove(member) };
    },
    get clientCount() {
      return members.size;
    },
    close: async () => {
      stopping = true;
      for (const member of [...members]) {
        remove(member);
        member.client.drop('closing');
      }
      await stopFollowing();
      await following;
    },
  };
};
