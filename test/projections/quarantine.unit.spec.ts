/**
 * The quarantine fold: a quarantine record becomes a row from which `GET /quarantine` shows exactly
 * the archived-event view of the record itself, whatever its body (text, binary, NUL) or its shape.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { toArchivedEventView } from '../../src/audit/archived-event-view.ts';
import type { RecordedEvent } from '../../src/event-store/event-store.ts';
import { quarantineProjection } from '../../projections/quarantine/projection.ts';
import { quarantinedRequestRow, quarantinedRequestView } from '../../projections/quarantine/read-model.ts';
import { quarantinedRecord } from '../support/quarantine-records.ts';

const recorded = (
  record: Pick<RecordedEvent, 'type' | 'data' | 'metadata'>,
  position = { commit: 18_446_744_073_709_551_000n, prepare: 18_446_744_073_709_550_999n },
): RecordedEvent => ({
  streamName: 'quarantine-2026-03-02',
  id: randomUUID(),
  revision: 7n,
  position,
  created: new Date('2026-03-02T09:00:00.123Z'),
  storedData: JSON.stringify(record.data),
  storedMetadata: JSON.stringify(record.metadata),
  ...record,
});

describe('the quarantine fold', () => {
  it.each([
    ['UTF-8 text', Buffer.from('{"broken": "ünïcødé 📞"')],
    ['bytes that are not UTF-8', Buffer.from([0x7b, 0xc3, 0x28, 0xff])],
    ['UTF-8 holding NUL', Buffer.from('{"a":"\u0000"')],
    ['an empty body', Buffer.alloc(0)],
  ])('shows a record with %s exactly as the stream view does', (_label, raw) => {
    const record = recorded(quarantinedRecord({ raw, receivedAt: '2026-03-02T09:00:00.000Z' }));
    const row = quarantinedRequestRow(record);
    expect(row.rawBody?.equals(raw)).toBe(true);
    expect(row.commitPosition).toBe(record.position.commit);
    expect(row.preparePosition).toBe(record.position.prepare);
    expect(quarantinedRequestView(row)).toEqual(toArchivedEventView(record));
  });

  it('keeps an oversized body’s truncation details, its content type and its reason', () => {
    const record = recorded({
      ...quarantinedRecord({
        raw: Buffer.from('{"a":'),
        receivedAt: '2026-03-02T09:00:00.000Z',
        reason: 'body-too-large',
        contentType: null,
      }),
    });
    (record.data as Record<string, unknown>)['bodyTruncated'] = true;
    (record.data as Record<string, unknown>)['receivedBytes'] = 2_000_000;
    const view = quarantinedRequestView(quarantinedRequestRow(record));
    expect(view.data).toMatchObject({
      reason: 'body-too-large',
      contentType: null,
      bodyTruncated: true,
      receivedBytes: 2_000_000,
    });
    expect(view.data).not.toHaveProperty('rawBody');
    expect(view).toEqual(toArchivedEventView(record));
  });

  it.each([
    ['no metadata and no raw body', { type: 'quarantined-request', data: { reason: 'x' }, metadata: null }],
    [
      'data that is not an object',
      { type: 'something-else', data: 'just text', metadata: { receivedAt: 5 } },
    ],
    [
      'a raw body with an unknown encoding',
      { type: 'quarantined-request', data: { rawBody: 'abc', rawBodyEncoding: 'hex' }, metadata: {} },
    ],
  ])('shows a record with %s as far as it can be read, never refusing it', (_label, record) => {
    const event = recorded(record);
    expect(() => quarantineProjection.decode(event)).not.toThrow();
    expect(quarantinedRequestView(quarantineProjection.decode(event))).toEqual(toArchivedEventView(event));
  });
});
