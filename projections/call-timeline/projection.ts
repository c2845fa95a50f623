/**
 * How the `call-timeline` projection writes: one `call_timeline` row per call event, and one
 * `relay_exchanges` row per relay exchange the call's stream holds beside its events, a row already
 * stored left alone (see `read-model.ts` and `relay-exchanges.ts`). Both tables are the call's
 * timeline, so one projection (one checkpoint, one rebuild) owns them. The relay exchanges of
 * requests without a call (in the per-day `assistant-requests-` streams, whose requests it passes
 * by) go to `assistant_request_exchanges`, so that every exchange is in a read model.
 */
import { tableName, unnestColumnsOf, unnestInsert } from '../../src/database/sql.ts';
import { decodeCallEvent, type CallEvent } from '../../src/archive/call-event.ts';
import { assistantRequestStreamPrefix, callStreamPrefix } from '../../src/archive/streams.ts';
import type { Projection } from '../projection.ts';
import {
  assistantRequestExchangeRecord,
  assistantRequestExchanges,
  type AssistantRequestExchangeRecord,
} from './assistant-request-exchanges.ts';
import { callTimeline, timelineRecords, type TimelineRecord } from './read-model.ts';
import {
  isRelayExchange,
  relayExchangeRecord,
  relayExchanges,
  type RelayExchangeRecord,
} from './relay-exchanges.ts';

const timelineColumns = unnestColumnsOf<typeof callTimeline, never, TimelineRecord>(callTimeline);
const relayExchangesTable = tableName(relayExchanges);
const relayExchangeColumns = unnestColumnsOf<typeof relayExchanges, never, RelayExchangeRecord>(
  relayExchanges,
);
const assistantRequestExchangesTable = tableName(assistantRequestExchanges);
const assistantRequestExchangeColumns = unnestColumnsOf<
  typeof assistantRequestExchanges,
  never,
  AssistantRequestExchangeRecord
>(assistantRequestExchanges);

export type TimelineInput =
  | { readonly kind: 'call-event'; readonly event: CallEvent }
  | { readonly kind: 'relay-exchange'; readonly exchange: RelayExchangeRecord }
  | { readonly kind: 'assistant-request-exchange'; readonly exchange: AssistantRequestExchangeRecord };

export const callTimelineProjection: Projection<TimelineInput> = {
  name: 'call-timeline',
  streamPrefix: callStreamPrefix,
  otherStreamPrefixes: [assistantRequestStreamPrefix],
  // Of the per-day request streams, only the exchanges: the requests are in no read model.
  folds: (recorded) => recorded.streamName.startsWith(callStreamPrefix) || isRelayExchange(recorded),
  decode: (recorded) =>
    !recorded.streamName.startsWith(callStreamPrefix)
      ? { kind: 'assistant-request-exchange', exchange: assistantRequestExchangeRecord(recorded) }
      : isRelayExchange(recorded)
        ? { kind: 'relay-exchange', exchange: relayExchangeRecord(recorded) }
        : { kind: 'call-event', event: decodeCallEvent(recorded) },
  tables: [tableName(callTimeline), relayExchangesTable, assistantRequestExchangesTable],
  apply: async (client, inputs) => {
    const events: CallEvent[] = [];
    const exchanges: RelayExchangeRecord[] = [];
    const withoutCall: AssistantRequestExchangeRecord[] = [];
    for (const input of inputs) {
      if (input.kind === 'call-event') events.push(input.event);
      else if (input.kind === 'relay-exchange') exchanges.push(input.exchange);
      else withoutCall.push(input.exchange);
    }
    const rows = timelineRecords(events);
    if (rows.length > 0) {
      await client.query(
        unnestInsert(tableName(callTimeline), timelineColumns, rows, 'ON CONFLICT (event_id) DO NOTHING'),
      );
    }
    if (exchanges.length > 0) {
      await client.query(
        unnestInsert(
          relayExchangesTable,
          relayExchangeColumns,
          exchanges,
          'ON CONFLICT (event_id) DO NOTHING',
        ),
      );
    }
    if (withoutCall.length > 0) {
      await client.query(
        unnestInsert(
          assistantRequestExchangesTable,
          assistantRequestExchangeColumns,
          withoutCall,
          'ON CONFLICT (event_id) DO NOTHING',
        ),
      );
    }
    return [];
  },
};
