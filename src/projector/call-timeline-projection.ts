/**
 * The `call-timeline` projection: one `call_timeline` row per event (see `projections/call-timeline.ts`).
 */
import { timelineRecords, type TimelineRecord } from '../../projections/call-timeline.ts';
import type { Projection } from './projection.ts';
import { bigintText, unnestInsert, type UnnestColumn } from './sql.ts';

const timelineColumns: readonly UnnestColumn<TimelineRecord>[] = [
  { name: 'event_id', type: 'uuid', value: (row) => row.eventId },
  { name: 'call_id', type: 'text', value: (row) => row.callId },
  { name: 'event_type', type: 'text', value: (row) => row.eventType },
  { name: 'status', type: 'text', value: (row) => row.status },
  { name: 'raw_status', type: 'text', value: (row) => row.rawStatus },
  { name: 'debugging_artifact', type: 'text', value: (row) => row.debuggingArtifact },
  { name: 'ended_reason', type: 'text', value: (row) => row.endedReason },
  { name: 'event_time', type: 'timestamptz', value: (row) => row.eventTime },
  { name: 'received_at', type: 'timestamptz', value: (row) => row.receivedAt },
  { name: 'signature_verified', type: 'bool', value: (row) => row.signatureVerified },
  { name: 'payload_generation', type: 'int2', value: (row) => row.payloadGeneration },
  { name: 'stream_revision', type: 'int8', value: (row) => bigintText(row.streamRevision) },
  { name: 'commit_position', type: 'numeric', value: (row) => bigintText(row.commitPosition) },
  { name: 'prepare_position', type: 'numeric', value: (row) => bigintText(row.preparePosition) },
];

export const callTimelineProjection: Projection = {
  name: 'call-timeline',
  tables: ['call_timeline'],
  apply: async (client, events) => {
    const rows = timelineRecords(events);
    if (rows.length > 0) {
      await client.query(
        unnestInsert('call_timeline', timelineColumns, rows, 'ON CONFLICT (event_id) DO NOTHING'),
      );
    }
    return [];
  },
};
