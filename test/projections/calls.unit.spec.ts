import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyCallEvent,
  evolveCall,
  renderCall,
  type CallFold,
  type CallRow,
} from '../../projections/calls/read-model.ts';
import { terminationOfCall } from '../../projections/terminations/read-model.ts';
import type { CallEventType, CallStatus } from '../../src/archive/archived-event.ts';
import { decodeCallEvent } from '../../src/archive/call-event.ts';
import {
  endOfCallReport,
  recordedCallEvent,
  statusUpdate,
  toolCalls,
  type CallEventSpec,
} from '../support/call-events.ts';

const callId = 'c0ffee00-0000-4000-8000-000000000001';

/** Stores the specs in the given order (revisions 0, 1, ...) and folds them as the store delivers them. */
const foldStored = (specs: readonly CallEventSpec[]): CallRow => {
  let row: CallRow | undefined;
  specs.forEach((spec, revision) => {
    row = evolveCall(row, decodeCallEvent(recordedCallEvent(spec, BigInt(revision))));
  });
  if (row === undefined) throw new Error('no events');
  return row;
};

describe('calls fold', () => {
  it('takes status, times and duration from the status updates', () => {
    const row = foldStored([
      statusUpdate(callId, 'in-progress', '2026-03-01T10:00:00.000Z'),
      toolCalls(callId, '2026-03-01T10:01:00.000Z'),
      statusUpdate(callId, 'ended', '2026-03-01T10:02:30.000Z'),
    ]);
    expect(row).toMatchObject({
      callId,
      status: 'ended',
      outcome: 'ended',
      caller: '+4915112345678',
      assistant: '+4930123456',
      firstEventAt: new Date('2026-03-01T10:00:00.000Z'),
      lastEventAt: new Date('2026-03-01T10:02:30.000Z'),
      startedAt: new Date('2026-03-01T10:00:00.000Z'),
      endedAt: new Date('2026-03-01T10:02:30.000Z'),
      durationSeconds: 150,
      eventCount: 3,
      lastRevision: 2n,
      lastCommitPosition: 1002n,
      lastPreparePosition: 1002n,
    });
  });

  it('decides by event time, not by arrival: ended stored before in-progress', () => {
    const inProgress = statusUpdate(callId, 'in-progress', '2026-03-01T10:00:00.000Z', {
      id: 'a0000000-0000-4000-8000-000000000001',
    });
    const ended = statusUpdate(callId, 'ended', '2026-03-01T10:05:00.000Z', {
      id: 'a0000000-0000-4000-8000-000000000002',
    });
    const rightOrder = foldStored([inProgress, ended]);
    const wrongOrder = foldStored([ended, inProgress]);
    expect(wrongOrder.status).toBe('ended');
    expect(withoutBookkeeping(wrongOrder)).toEqual(withoutBookkeeping(rightOrder));
  });

  it('keeps an ended call ended when an in-progress update carries a later time', () => {
    const row = foldStored([
      statusUpdate(callId, 'in-progress', '2026-03-01T10:00:00.000Z'),
      statusUpdate(callId, 'ended', '2026-03-01T10:05:00.000Z'),
      statusUpdate(callId, 'in-progress', '2026-03-01T10:09:00.000Z'),
    ]);
    expect(row.status).toBe('ended');
    expect(row.outcome).toBe('ended');
    expect(row.endedAt).toEqual(new Date('2026-03-01T10:05:00.000Z'));
    expect(row.lastEventAt).toEqual(new Date('2026-03-01T10:09:00.000Z'));
  });

  it('takes the latest ending, and breaks a tie in time towards the one with debugging information', () => {
    const later = foldStored([
      statusUpdate(callId, 'ended-with-debugging', '2026-03-01T10:04:00.000Z', {
        debuggingArtifact: 'trace-1',
      }),
      statusUpdate(callId, 'ended', '2026-03-01T10:05:00.000Z'),
    ]);
    expect(later.outcome).toBe('ended');
    expect(later.debuggingArtifact).toBe('trace-1');
    const tie = foldStored([
      statusUpdate(callId, 'ended', '2026-03-01T10:05:00.000Z'),
      statusUpdate(callId, 'ended-with-debugging', '2026-03-01T10:05:00.000Z', {
        debuggingArtifact: 'trace-2',
      }),
    ]);
    expect(tie.outcome).toBe('ended-with-debugging');
    expect(tie.debuggingArtifact).toBe('trace-2');
  });

  it('lets an end-of-call report end a call, without hiding the ending status update', () => {
    const reportOnly = foldStored([
      statusUpdate(callId, 'in-progress', '2026-03-01T10:00:00.000Z'),
      endOfCallReport(callId, '2026-03-01T10:06:00.000Z', {
        startedAt: '2026-03-01T09:59:58.000Z',
        endedAt: '2026-03-01T10:05:58.000Z',
        durationSeconds: 360,
        endedReason: 'customer-ended-call',
      }),
    ]);
    expect(reportOnly).toMatchObject({
      status: 'ended',
      outcome: 'ended',
      endedReason: 'customer-ended-call',
      startedAt: new Date('2026-03-01T09:59:58.000Z'),
      endedAt: new Date('2026-03-01T10:05:58.000Z'),
      durationSeconds: 360,
    });

    const withStatus = foldStored([
      endOfCallReport(callId, '2026-03-01T10:06:00.000Z', { durationSeconds: 359.5 }),
      statusUpdate(callId, 'ended-with-debugging', '2026-03-01T10:05:00.000Z', {
        debuggingArtifact: 'trace-3',
      }),
      statusUpdate(callId, 'in-progress', '2026-03-01T10:00:00.000Z'),
    ]);
    expect(withStatus).toMatchObject({
      status: 'ended-with-debugging',
      outcome: 'ended-with-debugging',
      debuggingArtifact: 'trace-3',
      endedReason: 'customer-ended-call',
      startedAt: new Date('2026-03-01T10:00:00.000Z'),
      endedAt: new Date('2026-03-01T10:05:00.000Z'),
      durationSeconds: 359.5,
    });
  });

  it('uses the report time as the end when the report states no end', () => {
    const row = foldStored([endOfCallReport(callId, '2026-03-01T10:06:00.000Z')]);
    expect(row.endedAt).toEqual(new Date('2026-03-01T10:06:00.000Z'));
    expect(row.startedAt).toBeNull();
    expect(row.durationSeconds).toBeNull();
  });

  it('leaves status null and the call open before any status, and ignores events without a time for times', () => {
    const row = foldStored([
      toolCalls(callId, '2026-03-01T10:01:00.000Z'),
      { callId, eventType: 'unknown', at: null },
    ]);
    expect(row).toMatchObject({
      status: null,
      outcome: null,
      endedAt: null,
      firstEventAt: new Date('2026-03-01T10:01:00.000Z'),
      lastEventAt: new Date('2026-03-01T10:01:00.000Z'),
      eventCount: 2,
    });
    expect(terminationOfCall(row)).toBeUndefined();
  });

  it('changes nothing when an event at or below the last revision is applied again', () => {
    const first = decodeCallEvent(
      recordedCallEvent(statusUpdate(callId, 'in-progress', '2026-03-01T10:00:00.000Z'), 0n),
    );
    const second = decodeCallEvent(
      recordedCallEvent(statusUpdate(callId, 'ended', '2026-03-01T10:03:00.000Z'), 1n),
    );
    const row = evolveCall(evolveCall(undefined, first), second);
    expect(evolveCall(row, second)).toBe(row);
    expect(evolveCall(row, first)).toBe(row);
    expect(row.eventCount).toBe(2);
  });

  it('derives the termination from the ended call', () => {
    const row = foldStored([
      statusUpdate(callId, 'in-progress', '2026-03-01T10:00:00.000Z'),
      statusUpdate(callId, 'ended-with-debugging', '2026-03-01T10:00:42.000Z', {
        debuggingArtifact: 'trace-4',
        endedReason: 'pipeline-error',
      }),
    ]);
    expect(terminationOfCall(row)).toEqual({
      callId,
      outcome: 'ended-with-debugging',
      endedReason: 'pipeline-error',
      debuggingArtifact: 'trace-4',
      startedAt: new Date('2026-03-01T10:00:00.000Z'),
      endedAt: new Date('2026-03-01T10:00:42.000Z'),
      durationSeconds: 42,
      caller: '+4915112345678',
      assistant: '+4930123456',
      lastCommitPosition: 1001n,
      lastPreparePosition: 1001n,
    });
  });
});

const withoutBookkeeping = ({
  lastRevision: _revision,
  lastCommitPosition: _commit,
  lastPreparePosition: _prepare,
  ...rest
}: CallRow) => rest;

/** What the read model stores between batches: the row as it comes back from Postgres. */
const roundTrip = (row: CallRow): CallRow => ({
  ...row,
  foldState: JSON.parse(JSON.stringify(row.foldState)) as CallRow['foldState'],
});

// Few distinct values, so ties in time and conflicting values are common.
const times = [
  '2026-03-01T10:00:00.000Z',
  '2026-03-01T10:00:01.000Z',
  '2026-03-01T10:02:00.000Z',
  '2026-03-01T11:00:00.000Z',
];
const eventSpec = fc.record({
  id: fc.uuid(),
  eventType: fc.constantFrom<CallEventType>(
    'status-update',
    'status-update',
    'end-of-call-report',
    'tool-calls',
    'unknown',
  ),
  at: fc.option(fc.constantFrom(...times), { freq: 6 }),
  status: fc.option(fc.constantFrom<CallStatus>('in-progress', 'ended', 'ended-with-debugging'), { freq: 6 }),
  caller: fc.option(fc.constantFrom('+4915100000001', '+4915100000002')),
  debuggingArtifact: fc.option(fc.constantFrom('trace-a', 'trace-b')),
  endedReason: fc.option(fc.constantFrom('customer-ended-call', 'silence-timed-out')),
  durationSeconds: fc.option(fc.constantFrom(12, 61.5)),
  startedAt: fc.option(fc.constantFrom(...times)),
  endedAt: fc.option(fc.constantFrom(...times)),
  receivedAt: fc.constantFrom('2026-03-01T12:00:00.000Z', '2026-03-01T12:00:01.000Z'),
});

describe('calls fold, order independence', () => {
  it('yields the same row for any storage order, redelivery and batching as for the event-time order', () => {
    const scenario = fc
      .uniqueArray(eventSpec, { minLength: 1, maxLength: 10, selector: (spec) => spec.id })
      .chain((specs) =>
        fc.record({
          specs: fc.constant(specs),
          stored: fc.shuffledSubarray(specs, { minLength: specs.length, maxLength: specs.length }),
          // After delivering revision k: redeliver some revision <= k (a resubscription), and maybe end the batch.
          redeliveries: fc.array(fc.option(fc.nat()), { minLength: specs.length, maxLength: specs.length }),
          batchEnds: fc.array(fc.boolean(), { minLength: specs.length, maxLength: specs.length }),
        }),
      );
    fc.assert(
      fc.property(scenario, ({ specs, stored, redeliveries, batchEnds }) => {
        const withCall = (spec: (typeof specs)[number]): CallEventSpec => ({
          ...spec,
          callId,
          eventType: spec.eventType,
        });
        const byEventTime = [...specs].sort(
          (a, b) => (a.at ?? '').localeCompare(b.at ?? '') || a.id.localeCompare(b.id),
        );
        const expected = foldStored(byEventTime.map(withCall));

        const recorded = stored.map((spec, revision) =>
          decodeCallEvent(recordedCallEvent(withCall(spec), BigInt(revision))),
        );
        let row: CallRow | undefined;
        recorded.forEach((event, revision) => {
          row = evolveCall(row, event);
          const again = redeliveries[revision];
          if (again !== null && again !== undefined) row = evolveCall(row, recorded[again % (revision + 1)]!);
          if (batchEnds[revision] && row !== undefined) row = roundTrip(row);
        });
        expect(row).toBeDefined();
        expect(withoutBookkeeping(row!)).toEqual(withoutBookkeeping(expected));
        // The projector folds a batch first and renders once: the same row.
        let fold: CallFold | undefined;
        for (const event of recorded) fold = applyCallEvent(fold, event);
        expect(renderCall(fold!)).toEqual(row);
        expect(row!.eventCount).toBe(specs.length);
        expect(row!.lastRevision).toBe(BigInt(specs.length - 1));
      }),
      { numRuns: 500 },
    );
  });
});
