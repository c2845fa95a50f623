/**
 * Reading the archive back in global order, for replay (the `/replay` route and `calltrail replay`
 * share it): a selection of calltrail's streams, resumable after a position, optionally bounded by
 * reception time.
 *
 * The store is read in pages that are fully read before any event is handed on, so a slow consumer
 * (a rate-limited redelivery, a slow HTTP client) never holds a store read open; memory stays
 * bounded by one page.
 */
import {
  archiveStreamPrefixes,
  assistantRequestStreamPrefix,
  callStreamName,
  callStreamPrefix,
} from '../archive/streams.ts';
import {
  comparePositions,
  type EventStore,
  type GlobalPosition,
  type RecordedEvent,
} from '../event-store/event-store.ts';
import { InvalidArgumentError } from '../errors.ts';
import { receivedAtOf } from './archived-event-view.ts';

export interface ArchiveSelection {
  /** Each is one of calltrail's stream prefixes or a longer prefix within one. */
  readonly streamPrefixes: readonly string[];
  /** Exclusive: the last position a reader already has. */
  readonly after?: GlobalPosition | undefined;
  /** Reception time, inclusive. */
  readonly receivedFrom?: Date | undefined;
  /** Reception time, exclusive. */
  readonly receivedTo?: Date | undefined;
}

/** What redelivery sends by default: Flireo's own events; quarantined requests only when asked. */
export const eventStreamPrefixes: readonly string[] = [callStreamPrefix, assistantRequestStreamPrefix];

export const streamPrefixPattern = `^(${archiveStreamPrefixes.join('|')})[A-Za-z0-9._:-]{0,128}$`;

const streamPrefixRegExp = new RegExp(streamPrefixPattern);

/**
 * Only calltrail's own streams can be replayed: a prefix outside them would reach other
 * applications' streams (or system streams) in a shared event store.
 */
export const parseStreamPrefix = (text: string, field: string): string => {
  if (!streamPrefixRegExp.test(text)) {
    throw new InvalidArgumentError([
      {
        field,
        message: `must be one of ${archiveStreamPrefixes.map((p) => `"${p}"`).join(', ')} or a longer prefix within one`,
      },
    ]);
  }
  return text;
};

const inReceivedRange = (event: RecordedEvent, selection: ArchiveSelection): boolean => {
  if (!selection.receivedFrom && !selection.receivedTo) return true;
  const receivedAt = receivedAtOf(event).getTime();
  return (
    (!selection.receivedFrom || receivedAt >= selection.receivedFrom.getTime()) &&
    (!selection.receivedTo || receivedAt < selection.receivedTo.getTime())
  );
};

const isAfter = (event: RecordedEvent, after: GlobalPosition | undefined): boolean =>
  !after || comparePositions(event.position, after) > 0;

/**
 * Every selected event after `selection.after`, in global order, each once. Reception time is not
 * the store's order, so a time-bounded read scans from `after` (or the start) to the head; a caller
 * that replays in slices passes the last position it saw as `after`.
 */
export async function* readArchive(
  eventStore: EventStore,
  selection: ArchiveSelection,
  options: { readonly pageSize?: number } = {},
): AsyncGenerator<RecordedEvent> {
  const pageSize = options.pageSize ?? 100;
  let after = selection.after;
  for (;;) {
    const page: RecordedEvent[] = [];
    let read = 0;
    // `from` is inclusive, so the page starts with the event we already have (when it still exists).
    for await (const event of eventStore.readAll({
      ...(after ? { from: after } : {}),
      streamPrefixes: selection.streamPrefixes,
      maxCount: pageSize,
      direction: 'forwards',
    })) {
      read += 1;
      if (isAfter(event, after)) page.push(event);
    }
    for (const event of page) if (inReceivedRange(event, selection)) yield event;
    const last = page.at(-1);
    if (read < pageSize || !last) return;
    after = last.position;
  }
}

/** One call's events in stream order (which is its global order), with the same bounds. */
export async function* readCall(
  eventStore: EventStore,
  callId: string,
  selection: Omit<ArchiveSelection, 'streamPrefixes'> = {},
  options: { readonly pageSize?: number } = {},
): AsyncGenerator<RecordedEvent> {
  const pageSize = options.pageSize ?? 100;
  let fromRevision = 0n;
  for (;;) {
    const page: RecordedEvent[] = [];
    for await (const event of eventStore.readStream(callStreamName(callId), {
      fromRevision,
      maxCount: pageSize,
    }))
      page.push(event);
    for (const event of page)
      if (isAfter(event, selection.after) && inReceivedRange(event, { ...selection, streamPrefixes: [] }))
        yield event;
    const last = page.at(-1);
    if (page.length < pageSize || !last) return;
    fromRevision = last.revision + 1n;
  }
}
