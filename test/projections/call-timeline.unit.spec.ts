import { describe, expect, it } from 'vitest';
import { timelineEntries, timelineRecords } from '../../projections/call-timeline/read-model.ts';
import { decodeCallEvent } from '../../src/archive/call-event.ts';
import { endOfCallReport, recordedCallEvent, statusUpdate } from '../support/call-events.ts';

const callId = 'c0ffee00-0000-4000-8000-000000000003';

describe('call timeline fold', () => {
  it('makes one row per event, and one for an event delivered twice', () => {
    const ended = decodeCallEvent(
      recordedCallEvent(
        statusUpdate(callId, 'ended-with-debugging', '2026-03-01T10:05:00.000Z', {
          debuggingArtifact: 'trace-9',
        }),
        1n,
        {
          commit: 18446744073709551615n,
          prepare: 18446744073709551614n,
        },
      ),
    );
    const report = decodeCallEvent(
      recordedCallEvent(endOfCallReport(callId, '2026-03-01T10:06:00.000Z'), 2n),
    );
    const rows = timelineEntries([ended, report, ended]);
    expect(rows).toHaveLength(2);
    expect(rows[0]).toEqual({
      eventId: ended.eventId,
      callId,
      eventType: 'status-update',
      status: 'ended-with-debugging',
      rawStatus: 'ended-with-debugging',
      debuggingArtifact: 'trace-9',
      endedReason: null,
      eventTime: new Date('2026-03-01T10:05:00.000Z'),
      receivedAt: new Date('2026-03-01T10:00:05.000Z'),
      signatureVerified: true,
      payloadGeneration: 1,
      streamRevision: 1n,
      commitPosition: 18446744073709551615n,
      preparePosition: 18446744073709551614n,
    });
    expect(rows[1]).toMatchObject({ eventType: 'end-of-call-report', endedReason: 'customer-ended-call' });
    // What the projector writes: the same row, times as the events' normalized text.
    expect(timelineRecords([ended, report, ended])).toEqual(
      rows.map((row) => ({
        ...row,
        eventTime: row.eventTime?.toISOString() ?? null,
        receivedAt: row.receivedAt.toISOString(),
      })),
    );
  });
});
