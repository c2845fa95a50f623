import { describe, expect, it } from 'vitest';
import { callTimeline } from '../../projections/call-timeline/read-model.ts';
import { calls } from '../../projections/calls/read-model.ts';
import { terminations } from '../../projections/terminations/read-model.ts';
import { projectionDeadLetters } from '../../src/projector/schema.ts';
import { unnestColumnsOf } from '../../src/database/sql.ts';

const shape = (columns: readonly { name: string; type: string }[]) =>
  columns.map(({ name, type }) => `${name} ${type}`);

describe('unnestColumnsOf', () => {
  it('derives each read model column with the array type the writes cast to', () => {
    expect(shape(unnestColumnsOf(calls))).toEqual([
      'call_id text',
      'caller text',
      'assistant text',
      'first_event_at timestamptz',
      'last_event_at timestamptz',
      'status text',
      'outcome text',
      'ended_reason text',
      'debugging_artifact text',
      'started_at timestamptz',
      'ended_at timestamptz',
      'duration_seconds float8',
      'event_count int4',
      'last_revision int8',
      'last_commit_position numeric',
      'last_prepare_position numeric',
      'fold_state json',
    ]);
    expect(shape(unnestColumnsOf(terminations))).toEqual([
      'call_id text',
      'outcome text',
      'ended_reason text',
      'debugging_artifact text',
      'started_at timestamptz',
      'ended_at timestamptz',
      'duration_seconds float8',
      'caller text',
      'assistant text',
      'last_commit_position numeric',
      'last_prepare_position numeric',
    ]);
    expect(shape(unnestColumnsOf(callTimeline))).toEqual([
      'event_id uuid',
      'call_id text',
      'event_type text',
      'status text',
      'raw_status text',
      'debugging_artifact text',
      'ended_reason text',
      'event_time timestamptz',
      'received_at timestamptz',
      'signature_verified bool',
      'payload_generation int2',
      'stream_revision int8',
      'commit_position numeric',
      'prepare_position numeric',
    ]);
    expect(shape(unnestColumnsOf(projectionDeadLetters, ['id']))).toEqual([
      'projection text',
      'event_id uuid',
      'stream_name text',
      'stream_revision int8',
      'commit_position numeric',
      'prepare_position numeric',
      'event_type text',
      'error text',
      'recorded_at timestamptz',
    ]);
  });

  it('sends times, bigints and JSON as text, and nulls as null', () => {
    const [id, at, amount, document] = unnestColumnsOf(calls).filter((column) =>
      ['call_id', 'ended_at', 'last_revision', 'fold_state'].includes(column.name),
    );
    const row = {
      callId: 'call-1',
      endedAt: new Date('2026-03-01T10:00:00.123Z'),
      lastRevision: 18446744073709551615n,
      foldState: { caller: [null, '+31612345678'] },
    } as unknown as typeof calls.$inferSelect;
    expect(id!.value(row)).toBe('call-1');
    expect(at!.value(row)).toBe('2026-03-01T10:00:00.123Z');
    expect(at!.value({ ...row, endedAt: null })).toBeNull();
    expect(amount!.value(row)).toBe('18446744073709551615');
    expect(document!.value(row)).toBe('{"caller":[null,"+31612345678"]}');
  });
});
