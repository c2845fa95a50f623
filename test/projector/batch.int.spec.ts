/**
 * One batch against real Postgres read models: exactly once with its checkpoint, and poison events
 * found and skipped without losing the events around them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../../src/event-store/event-store.ts';
import { applyBatch } from '../../src/projector/batch.ts';
import { callTimelineProjection } from '../../projections/call-timeline/projection.ts';
import { callsProjection } from '../../projections/calls/projection.ts';
import type { Projection } from '../../projections/projection.ts';
import { CheckpointMovedError, loadCheckpoint } from '../../src/projector/checkpoints.ts';
import { recordedCallEvent, statusUpdate } from '../support/call-events.ts';
import { deadLetters, openReadModels, type ReadModels } from '../support/projector-harness.ts';

const events = (callId: string, count: number, poisonAt: readonly number[]): RecordedEvent[] =>
  Array.from({ length: count }, (_, index) =>
    recordedCallEvent(
      statusUpdate(
        callId,
        index === count - 1 ? 'ended' : 'in-progress',
        `2026-03-04T10:00:${String(index).padStart(2, '0')}.000Z`,
        // Postgres text cannot hold NUL: a row carrying it is refused, so the event is poison.
        { debuggingArtifact: poisonAt.includes(index) ? 'nul\u0000byte' : null },
      ),
      BigInt(index),
      { commit: BigInt(100 + index * 10), prepare: BigInt(100 + index * 10) },
    ),
  );

describe('applyBatch', () => {
  let readModels: ReadModels;
  beforeAll(async () => {
    readModels = await openReadModels('batch');
  });
  afterAll(async () => {
    await readModels.dispose();
  });

  it('dead-letters only the events Postgres refuses, and applies the rest with the checkpoint', async () => {
    const batch = events('batch-poison', 13, [4, 9]);
    const through = { commit: 500n, prepare: 500n };
    const apply = <Event>(projection: Projection<Event>) =>
      applyBatch(
        client,
        projection,
        { events: batch, after: undefined, through },
        { mode: 'transaction' },
        new Date(),
      );
    const client = await readModels.database.pool.connect();
    try {
      expect(await apply(callsProjection)).toEqual({ applied: 11, deadLettered: 2 });
      expect(await loadCheckpoint(client, 'calls')).toEqual(through);
      const { rows } = await client.query(
        'SELECT event_count, last_revision::text, status, debugging_artifact FROM calls',
      );
      expect(rows).toEqual([
        { event_count: 11, last_revision: '12', status: 'ended', debugging_artifact: null },
      ]);
      const letters = await deadLetters(readModels.database.pool);
      expect(letters.map((letter) => [letter.event_id, letter.stream_revision])).toEqual([
        [batch[4]!.id, '4'],
        [batch[9]!.id, '9'],
      ]);
      expect(letters[0]!.error).toMatch(/^22/);

      expect(await apply(callTimelineProjection)).toEqual({ applied: 11, deadLettered: 2 });
      expect((await client.query('SELECT 1 FROM call_timeline')).rowCount).toBe(11);

      // The same batch again is refused as a whole: the checkpoint has moved past it.
      await expect(apply(callsProjection)).rejects.toBeInstanceOf(CheckpointMovedError);
      expect((await client.query('SELECT event_count FROM calls')).rows).toEqual([{ event_count: 11 }]);
    } finally {
      client.release();
    }
  });
});
