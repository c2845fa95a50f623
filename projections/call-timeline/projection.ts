/**
 * How the `call-timeline` projection writes: one `call_timeline` row per event, a row already
 * stored left alone (see `read-model.ts`).
 */
import { tableName, unnestColumnsOf, unnestInsert } from '../../src/database/sql.ts';
import { decodeCallEvent, type CallEvent } from '../../src/archive/call-event.ts';
import { callStreamPrefix } from '../../src/archive/streams.ts';
import type { Projection } from '../projection.ts';
import { isRelayExchange } from '../relay-exchanges/read-model.ts';
import { callTimeline, timelineRecords, type TimelineRecord } from './read-model.ts';

const timelineColumns = unnestColumnsOf<typeof callTimeline, never, TimelineRecord>(callTimeline);

export const callTimelineProjection: Projection<CallEvent> = {
  name: 'call-timeline',
  streamPrefix: callStreamPrefix,
  // Relay exchanges sit in the call streams too; the relay-exchanges projection folds them.
  folds: (recorded) => !isRelayExchange(recorded),
  decode: decodeCallEvent,
  tables: [tableName(callTimeline)],
  apply: async (client, events) => {
    const rows = timelineRecords(events);
    if (rows.length > 0) {
      await client.query(
        unnestInsert(tableName(callTimeline), timelineColumns, rows, 'ON CONFLICT (event_id) DO NOTHING'),
      );
    }
    return [];
  },
};
