/**
 * How the `call-timeline` projection writes: one `call_timeline` row per call event, and one
 * `relay_exchanges` row per relay exchange the call's stream holds beside its events, a row already
 * stored left alone (see `read-model.ts` and `relay-exchanges.ts`). Both tables are the call's
 * timeline, so one projection (one checkpoint, one rebuild) owns them.
 */
import { tableName, unnestColumnsOf, unnestInsert } from '../../src/database/sql.ts';
import { decodeCallEvent, type CallEvent } from '../../src/archive/call-event.ts';
import { callStreamPrefix } from '../../src/archive/streams.ts';
import type { Projection } from '../projection.ts';
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

export type TimelineInput =
  | { readonly kind: 'call-event'; readonly event: CallEvent }
  | { readonly kind: 'relay-exchange'; readonly exchange: RelayExchangeRecord };

export const callTimelineProjection: Projection<TimelineInput> = {
  name: 'call-timeline',
  streamPrefix: callStreamPrefix,
  decode: (recorded) =>
    isRelayExchange(recorded)
      ? { kind: 'relay-exchange', exchange: relayExchangeRecord(recorded) }
      : { kind: 'call-event', event: decodeCallEvent(recorded) },
  tables: [tableName(callTimeline), relayExchangesTable],
  apply: async (client, inputs) => {
    const events: CallEvent[] = [];
    const exchanges: RelayExchangeRecord[] = [];
    for (const input of inputs) {
      if (input.kind === 'call-event') events.push(input.event);
      else exchanges.push(input.exchange);
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
    return [];
  },
};
