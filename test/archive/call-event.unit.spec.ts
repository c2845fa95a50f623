import { describe, expect, it } from 'vitest';
import { decodeCallEvent, PoisonEventError } from '../../src/archive/call-event.ts';
import { recordedCallEvent, statusUpdate } from '../support/call-events.ts';

const callId = 'c0ffee00-0000-4000-8000-000000000002';
const valid = () => recordedCallEvent(statusUpdate(callId, 'in-progress', '2026-03-01T12:00:00+02:00'), 3n);

const poisonMessage = (run: () => unknown): string => {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(PoisonEventError);
    return (error as Error).message;
  }
  throw new Error('expected a poison event');
};

describe('decodeCallEvent', () => {
  it('decodes an archived call event and normalizes its times to UTC milliseconds', () => {
    const event = decodeCallEvent(valid());
    expect(event).toMatchObject({
      callId,
      revision: 3n,
      eventType: 'status-update',
      status: 'in-progress',
      eventTime: '2026-03-01T10:00:00.000Z',
      receivedAt: '2026-03-01T10:00:05.000Z',
      signatureVerified: true,
      payloadGeneration: 1,
    });
  });

  it('decodes a record once, however many projections fold it, and a poison record the same each time', () => {
    const recorded = valid();
    expect(decodeCallEvent(recorded)).toBe(decodeCallEvent(recorded));
    const poison = { ...recorded, metadata: {} };
    const first = poisonMessage(() => decodeCallEvent(poison));
    expect(poisonMessage(() => decodeCallEvent(poison))).toBe(first);
    // Another record with the same content is decoded on its own.
    expect(decodeCallEvent({ ...recorded })).not.toBe(decodeCallEvent(recorded));
    expect(decodeCallEvent({ ...recorded })).toEqual(decodeCallEvent(recorded));
  });

  it('accepts leap days and offsets, and keeps canonical times as they are', () => {
    const recorded = valid();
    const decode = (eventTime: string) =>
      decodeCallEvent({ ...recorded, data: { ...(recorded.data as object), eventTime } }).eventTime;
    expect(decode('2028-02-29T23:59:59.999Z')).toBe('2028-02-29T23:59:59.999Z');
    expect(decode('2000-02-29T00:00:00Z')).toBe('2000-02-29T00:00:00.000Z');
    expect(decode('2026-03-01T00:30:00.5-01:30')).toBe('2026-03-01T02:00:00.500Z');
  });

  it('names the field of a record that is not an archived call event', () => {
    const recorded = valid();
    expect(
      poisonMessage(() =>
        decodeCallEvent({ ...recorded, data: { ...(recorded.data as object), status: 'ringing' } }),
      ),
    ).toMatch(/^data\/status/);
    expect(poisonMessage(() => decodeCallEvent({ ...recorded, data: 'not an object' }))).toMatch(/^data/);
    expect(poisonMessage(() => decodeCallEvent({ ...recorded, metadata: {} }))).toMatch(/^metadata/);
  });

  it('rejects times that are not ISO 8601 with a zone', () => {
    const recorded = valid();
    for (const eventTime of [
      'yesterday',
      '2026-03-01 10:00:00',
      '2026-03-01T10:00:00',
      '2026-02-30T10:00:00Z',
      '2026-02-29T10:00:00.000Z',
      '2026-03-01T25:00:00Z',
      '2026-03-01T24:00:00.000Z',
      '2026-03-01T23:60:00.000Z',
      '2026-03-01T23:59:60.000Z',
      '2026-13-01T10:00:00.000Z',
    ]) {
      expect(
        poisonMessage(() =>
          decodeCallEvent({ ...recorded, data: { ...(recorded.data as object), eventTime } }),
        ),
      ).toMatch(/^data\/eventTime/);
    }
  });

  it('rejects a record whose call id disagrees with its stream, and records outside call streams', () => {
    const recorded = valid();
    expect(poisonMessage(() => decodeCallEvent({ ...recorded, streamName: 'call-someone-else' }))).toMatch(
      /^data\/callId/,
    );
    expect(
      poisonMessage(() => decodeCallEvent({ ...recorded, streamName: 'quarantine-2026-03-01' })),
    ).toMatch(/^streamName/);
  });
});
