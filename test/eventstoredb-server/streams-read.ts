/**
 * `Streams.Read`: every read and every catch-up subscription. Reads of a stream or of `$all`,
 * forwards or backwards, optionally filtered; subscriptions to a stream or to `$all` send a
 * confirmation, the historical events (and, when filtered, a checkpoint every multiplier x window
 * considered events and one at the end of catch-up), `caught_up`, then live events.
 *
 * The live listener is registered before catch-up starts, in the same tick as the head of the log
 * is read, so the handover has no gap; events the catch-up already sent are skipped, so it has no
 * duplicate either. That mirrors the real server's enumerators (`Enumerator.AllSubscriptionFiltered`).
 */
import { randomUUID } from 'node:crypto';
import { status, type ServerWritableStream } from '@grpc/grpc-js';
import streamsPb from '@eventstore/db-client/generated/streams_pb.js';
import {
  contentTypes,
  eventMatches,
  type EventFilter,
  type InMemoryEventStore,
  type StoredEvent,
} from './store.ts';
import {
  BadRequestError,
  rpcError,
  rpcExceptions,
  streamIdentifier,
  streamNameOf,
  uint64,
  uuidToDto,
} from './protocol.ts';
import { callerOf } from './authorization.ts';
import type { CallRegistry } from './call-registry.ts';

type ReadReq = InstanceType<typeof streamsPb.ReadReq>;
type ReadResp = InstanceType<typeof streamsPb.ReadResp>;
type ReadOptions = InstanceType<typeof streamsPb.ReadReq.Options>;
type ReadCall = ServerWritableStream<ReadReq, ReadResp>;

const { ReadResp: ReadRespMessage, ReadReq: ReadReqMessage } = streamsPb;
const Options = ReadReqMessage.Options;

/** `DefaultReadBatchSize`: the default filter search window, and the catch-up page size. */
const defaultReadBatchSize = 32;
const maxUint64 = (1n << 64n) - 1n;

export interface ReadDependencies {
  readonly store: InMemoryEventStore;
  readonly calls: CallRegistry;
  /** Called for each event a read of `$all` sends, so a test can see how much a read cost. */
  readonly allEventSent?: () => void;
}

/** Writes with backpressure; resolves false when the call has ended and nothing more can be sent. */
const send = (call: ReadCall, message: ReadResp): Promise<boolean> =>
  new Promise((resolve) => {
    if (call.cancelled || call.writableEnded || call.destroyed) return resolve(false);
    if (call.write(message)) return resolve(true);
    const done = (ok: boolean) => {
      call.off('drain', onDrain);
      call.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    call.once('drain', onDrain);
    call.once('close', onClose);
  });

/** Resolves `$>` links ("<revision>@<stream>") to the event they point at. */
const resolveLink = (store: InMemoryEventStore, link: StoredEvent): StoredEvent | undefined => {
  const text = Buffer.from(link.data).toString('utf8');
  const match = /^(\d+)@(.+)$/.exec(text);
  if (!match) return undefined;
  const result = store.readStream(match[2]!, BigInt(match[1]!), 'forwards', 1n);
  const target = result.kind === 'success' ? result.events[0] : undefined;
  return target?.revision === BigInt(match[1]!) ? target : undefined;
};

const recordedEvent = (event: StoredEvent, structuredIds: boolean) => {
  const recorded = new ReadRespMessage.ReadEvent.RecordedEvent()
    .setId(uuidToDto(event.eventId, structuredIds))
    .setStreamIdentifier(streamIdentifier(event.streamName))
    .setStreamRevision(event.revision.toString())
    .setPreparePosition(event.position.toString())
    .setCommitPosition(event.position.toString())
    .setData(event.data)
    .setCustomMetadata(event.metadata);
  recorded
    .getMetadataMap()
    .set('type', event.eventType)
    .set('created', event.created.toString())
    .set('content-type', event.isJson ? contentTypes.json : contentTypes.octetStream);
  return recorded;
};

const eventMessage = (
  store: InMemoryEventStore,
  event: StoredEvent,
  options: { structuredIds: boolean; resolveLinks: boolean },
): ReadResp => {
  const readEvent = new ReadRespMessage.ReadEvent().setCommitPosition(event.position.toString());
  if (options.resolveLinks && event.eventType === '$>') {
    readEvent.setLink(recordedEvent(event, options.structuredIds));
    const target = resolveLink(store, event);
    if (target) readEvent.setEvent(recordedEvent(target, options.structuredIds));
  } else {
    readEvent.setEvent(recordedEvent(event, options.structuredIds));
  }
  return new ReadRespMessage().setEvent(readEvent);
};

const checkpointMessage = (position: bigint): ReadResp =>
  new ReadRespMessage().setCheckpoint(
    new ReadRespMessage.Checkpoint()
      .setCommitPosition(position.toString())
      .setPreparePosition(position.toString()),
  );

const confirmationMessage = (): ReadResp =>
  new ReadRespMessage().setConfirmation(
    new ReadRespMessage.SubscriptionConfirmation().setSubscriptionId(randomUUID()),
  );

const caughtUpMessage = (): ReadResp => new ReadRespMessage().setCaughtUp(new ReadRespMessage.CaughtUp());

const toFilter = (options: ReadOptions): { filter: EventFilter; window: number; multiplier: number } => {
  const filterOptions = options.getFilter()!;
  const on = filterOptions.hasStreamIdentifier()
    ? 'stream-name'
    : filterOptions.hasEventType()
      ? 'event-type'
      : undefined;
  if (!on) throw new BadRequestError('Filter must be on stream name or event type.');
  const expression = (
    on === 'stream-name' ? filterOptions.getStreamIdentifier() : filterOptions.getEventType()
  )!;
  const regexText = expression.getRegex();
  let regex: RegExp | undefined;
  if (regexText !== '') {
    try {
      regex = new RegExp(regexText);
    } catch {
      throw new BadRequestError(`Invalid regular expression: ${regexText}`);
    }
  }
  const window = filterOptions.hasMax() ? filterOptions.getMax() : defaultReadBatchSize;
  const multiplier = filterOptions.getCheckpointintervalmultiplier();
  if (window <= 0 || multiplier <= 0)
    throw new BadRequestError('Checkpoint interval and window must be positive.');
  return { filter: { on, prefixes: expression.getPrefixList(), regex }, window, multiplier };
};

/** A position the request names, as a log position; commit and prepare are equal for every event. */
const requestedPosition = (position: InstanceType<typeof Options.Position>): bigint =>
  uint64(position.getCommitPosition(), 'commit_position');

export const createReadHandler = ({ store, calls, allEventSent }: ReadDependencies) => {
  const readStream = async (call: ReadCall, options: ReadOptions, structuredIds: boolean) => {
    const streamOptions = options.getStream()!;
    const streamName = streamNameOf(streamOptions.getStreamIdentifier());
    const direction =
      options.getReadDirection() === Options.ReadDirection.BACKWARDS ? 'backwards' : 'forwards';
    const from = streamOptions.hasRevision()
      ? uint64(streamOptions.getRevision(), 'revision')
      : streamOptions.hasEnd()
        ? direction === 'backwards'
          ? undefined
          : maxUint64
        : direction === 'backwards'
          ? 0n
          : undefined;
    const result = store.readStream(
      streamName,
      from,
      direction,
      uint64(options.getCount(), 'count'),
      callerOf(call),
    );
    switch (result.kind) {
      case 'access-denied':
        throw rpcExceptions.accessDenied();
      case 'stream-deleted':
        throw rpcExceptions.streamDeleted(streamName);
      case 'stream-not-found':
        await send(
          call,
          new ReadRespMessage().setStreamNotFound(
            new ReadRespMessage.StreamNotFound().setStreamIdentifier(streamIdentifier(streamName)),
          ),
        );
        return;
      case 'success':
        break;
    }
    const resolveLinks = options.getResolveLinks();
    for (const event of result.events) {
      if (!(await send(call, eventMessage(store, event, { structuredIds, resolveLinks })))) return;
    }
    if ((options.getControlOption()?.getCompatibility() ?? 0) >= 1 && direction === 'forwards') {
      await send(
        call,
        new ReadRespMessage().setLastStreamPosition(store.lastRevision(streamName).toString()),
      );
    }
  };

  const readAll = async (call: ReadCall, options: ReadOptions, structuredIds: boolean) => {
    if (!store.allowed('$all', 'read', callerOf(call))) throw rpcExceptions.accessDenied();
    const allOptions = options.getAll()!;
    const backwards = options.getReadDirection() === Options.ReadDirection.BACKWARDS;
    const filter = options.hasFilter() ? toFilter(options).filter : undefined;
    const maxCount = uint64(options.getCount(), 'count');
    const resolveLinks = options.getResolveLinks();
    const log = store.allEvents;
    // Forwards from P includes P; backwards from P starts just before it, as the server pages.
    const boundary = allOptions.hasPosition()
      ? store.indexAtOrAfter(requestedPosition(allOptions.getPosition()!))
      : allOptions.hasEnd()
        ? log.length
        : 0;
    let index = backwards ? boundary - 1 : boundary;
    let sent = 0n;
    while (sent < maxCount && index >= 0 && index < log.length) {
      const event = log[index]!;
      index += backwards ? -1 : 1;
      if (!eventMatches(filter, event)) continue;
      if (!(await send(call, eventMessage(store, event, { structuredIds, resolveLinks })))) return;
      allEventSent?.();
      sent += 1n;
    }
  };

  /** A live feed registered before catch-up: events (and filtered checkpoints) in commit order. */
  const liveFeed = (accept: (event: StoredEvent) => boolean, checkpointInterval: number | undefined) => {
    type Item = { event: StoredEvent } | { checkpoint: bigint } | { deleted: string };
    const queue: Item[] = [];
    let wake: (() => void) | undefined;
    let considered = 0;
    const unsubscribe = store.onAppend((events) => {
      for (const event of events) {
        if (accept(event)) queue.push({ event });
        if (checkpointInterval !== undefined) {
          considered += 1;
          if (considered >= checkpointInterval) {
            considered = 0;
            queue.push({ checkpoint: event.position });
          }
        }
      }
      wake?.();
    });
    const next = async (isActive: () => boolean): Promise<Item | undefined> => {
      while (queue.length === 0) {
        if (!isActive()) return undefined;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
      return queue.shift();
    };
    return { unsubscribe, next, wakeUp: () => wake?.() };
  };

  const subscribeToStream = async (call: ReadCall, options: ReadOptions, structuredIds: boolean) => {
    const streamOptions = options.getStream()!;
    const streamName = streamNameOf(streamOptions.getStreamIdentifier());
    if (!store.allowed(streamName, 'read', callerOf(call))) throw rpcExceptions.accessDenied();
    const resolveLinks = options.getResolveLinks();
    const feed = liveFeed((event) => event.streamName === streamName, undefined);
    const subscription = calls.track(call, feed.wakeUp);
    try {
      // Revisions already sent (or not wanted): catch-up starts after it, live skips up to it.
      let lastRevision = streamOptions.hasRevision()
        ? uint64(streamOptions.getRevision(), 'revision')
        : streamOptions.hasEnd()
          ? store.lastRevision(streamName)
          : -1n;
      if (store.streamDeleted(streamName)) throw rpcExceptions.streamDeleted(streamName);
      if (!(await send(call, confirmationMessage()))) return;
      if (!streamOptions.hasEnd()) {
        for (;;) {
          const page = store.readStream(
            streamName,
            lastRevision + 1n,
            'forwards',
            BigInt(defaultReadBatchSize),
          );
          if (page.kind === 'stream-deleted') throw rpcExceptions.streamDeleted(streamName);
          if (page.kind === 'access-denied') throw rpcExceptions.accessDenied();
          if (page.kind !== 'success' || page.events.length === 0) break;
          for (const event of page.events) {
            if (!(await send(call, eventMessage(store, event, { structuredIds, resolveLinks })))) return;
            lastRevision = event.revision;
          }
        }
      }
      if (!(await send(call, caughtUpMessage()))) return;
      for (;;) {
        const item = await feed.next(subscription.isActive);
        if (!item) return;
        if (!('event' in item)) continue;
        if (item.event.eventType === '$streamDeleted') throw rpcExceptions.streamDeleted(streamName);
        if (item.event.revision <= lastRevision) continue;
        if (!(await send(call, eventMessage(store, item.event, { structuredIds, resolveLinks })))) return;
        lastRevision = item.event.revision;
      }
    } finally {
      feed.unsubscribe();
      subscription.release();
    }
  };

  const subscribeToAll = async (call: ReadCall, options: ReadOptions, structuredIds: boolean) => {
    if (!store.allowed('$all', 'read', callerOf(call))) throw rpcExceptions.accessDenied();
    const allOptions = options.getAll()!;
    const resolveLinks = options.getResolveLinks();
    const filtering = options.hasFilter() ? toFilter(options) : undefined;
    const checkpointInterval = filtering ? filtering.multiplier * filtering.window : undefined;
    const feed = liveFeed((event) => eventMatches(filtering?.filter, event), checkpointInterval);
    const subscription = calls.track(call, feed.wakeUp);
    try {
      const log = store.allEvents;
      const lastIndexed = log.at(-1)?.position ?? -1n;
      // The event or checkpoint position most recently sent: events after it, checkpoints at or after.
      let checkpoint = allOptions.hasPosition()
        ? requestedPosition(allOptions.getPosition()!)
        : allOptions.hasEnd()
          ? lastIndexed
          : -1n;
      let lastCheckpointSent: bigint | undefined;
      const sendCheckpoint = async (position: bigint) => {
        if (position < 0n || (lastCheckpointSent !== undefined && position <= lastCheckpointSent))
          return true;
        lastCheckpointSent = position;
        return send(call, checkpointMessage(position));
      };
      if (!(await send(call, confirmationMessage()))) return;

      if (checkpoint < lastIndexed) {
        let counter = 0;
        let index = store.indexAtOrAfter(checkpoint + 1n);
        const window = filtering?.window ?? defaultReadBatchSize;
        for (;;) {
          const page = store.allEvents.slice(index, index + window);
          index += page.length;
          for (const event of page) {
            if (!eventMatches(filtering?.filter, event)) continue;
            if (!(await send(call, eventMessage(store, event, { structuredIds, resolveLinks })))) return;
          }
          if (page.length > 0) checkpoint = page.at(-1)!.position;
          if (!filtering) {
            if (page.length === 0) break;
            continue;
          }
          counter += page.length;
          if (index >= store.allEvents.length) {
            // A checkpoint when going live, so one always falls within the interval.
            if (!(await sendCheckpoint(checkpoint))) return;
            break;
          }
          if (counter >= checkpointInterval!) {
            counter %= checkpointInterval!;
            if (!(await sendCheckpoint(checkpoint))) return;
          }
        }
      }
      if (!(await send(call, caughtUpMessage()))) return;
      for (;;) {
        const item = await feed.next(subscription.isActive);
        if (!item) return;
        if ('event' in item) {
          if (item.event.position <= checkpoint) continue;
          if (!(await send(call, eventMessage(store, item.event, { structuredIds, resolveLinks })))) return;
          checkpoint = item.event.position;
        } else if ('checkpoint' in item) {
          if (item.checkpoint < checkpoint) continue;
          if (!(await sendCheckpoint(item.checkpoint))) return;
          checkpoint = item.checkpoint;
        }
      }
    } finally {
      feed.unsubscribe();
      subscription.release();
    }
  };

  const handle = async (call: ReadCall): Promise<void> => {
    try {
      const options = call.request.getOptions();
      if (!options) throw new BadRequestError('Options are required.');
      if (!options.hasUuidOption()) throw new BadRequestError('Required argument uuidOption is missing.');
      const structuredIds = options.getUuidOption()!.hasStructured();
      const subscription = options.hasSubscription();
      if (options.hasStream()) {
        if (options.hasFilter()) throw new BadRequestError('Filters apply to $all only.');
        if (subscription) {
          if (options.getReadDirection() === Options.ReadDirection.BACKWARDS) {
            throw new BadRequestError('Subscriptions read forwards.');
          }
          await subscribeToStream(call, options, structuredIds);
        } else {
          await readStream(call, options, structuredIds);
        }
      } else if (options.hasAll()) {
        if (subscription) {
          if (options.getReadDirection() === Options.ReadDirection.BACKWARDS) {
            throw new BadRequestError('Subscriptions read forwards.');
          }
          await subscribeToAll(call, options, structuredIds);
        } else {
          await readAll(call, options, structuredIds);
        }
      } else {
        throw new BadRequestError('Either a stream or $all must be read.');
      }
      if (!call.cancelled && !call.writableEnded) call.end();
    } catch (error) {
      if (call.cancelled || call.writableEnded) return;
      call.emit(
        'error',
        error instanceof BadRequestError
          ? rpcError(status.INVALID_ARGUMENT, error.message)
          : error instanceof Error && 'code' in error
            ? error
            : rpcExceptions.unhandled(),
      );
    }
  };
  return (call: ReadCall): void => {
    void handle(call);
  };
};
