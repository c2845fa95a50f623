/**
 * A call as calltrail knew it at a given time: its stream replayed up to then, through the same
 * pure fold the `calls` projection runs, so "as of now" equals the read model's row.
 *
 * "As of" is over reception time: an event counts when calltrail had received it by then
 * (`receivedAt <= asOf`), whatever time Flireo stamped on it. That answers the auditor's question
 * "what did we know at that moment": an event stamped 10:00 but delivered at 10:05 was unknown at
 * 10:02. Records the projection cannot decode (dead letters there) are skipped here too.
 */
import type { EventStore } from '../event-store/event-store.ts';
import { decodeCallEvent, PoisonEventError, type CallEvent } from '../archive/call-event.ts';
import { evolveCall, type CallRow } from '../../projections/calls/read-model.ts';
import { timelineEntry, type CallTimelineRow } from '../../projections/call-timeline/read-model.ts';
import { readCall } from './archive-reader.ts';

export interface CallAsOf {
  readonly call: CallRow;
  /** In the read model's order: event time (undated last), then revision. */
  readonly timeline: readonly CallTimelineRow[];
}

const byEventTimeThenRevision = (a: CallTimelineRow, b: CallTimelineRow): number => {
  const at = a.eventTime?.getTime() ?? Number.POSITIVE_INFINITY;
  const bt = b.eventTime?.getTime() ?? Number.POSITIVE_INFINITY;
  return at === bt
    ? a.streamRevision < b.streamRevision
      ? -1
      : a.streamRevision > b.streamRevision
        ? 1
        : 0
    : at - bt;
};

/** Undefined when calltrail had received no event of the call by `asOf`. */
export const callAsOf = async (
  eventStore: EventStore,
  callId: string,
  asOf: Date,
): Promise<CallAsOf | undefined> => {
  const events: CallEvent[] = [];
  for await (const recorded of readCall(eventStore, callId)) {
    let event: CallEvent;
    try {
      event = decodeCallEvent(recorded);
    } catch (error) {
      if (error instanceof PoisonEventError) continue;
      throw error;
    }
    if (Date.parse(event.receivedAt) <= asOf.getTime()) events.push(event);
  }
  let call: CallRow | undefined;
  for (const event of events) call = evolveCall(call, event);
  if (call === undefined) return undefined;
  return { call, timeline: events.map(timelineEntry).sort(byEventTimeThenRevision) };
};
