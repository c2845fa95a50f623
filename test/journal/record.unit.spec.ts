/**
 * A journal record read back: what was written comes back whole, and bytes that are not a record
 * (cut short, altered, valid JSON of another shape) are named as such rather than drained.
 */
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeRecord, encodeRecord, type JournalRecord } from '../../src/journal/journal.ts';

const record: JournalRecord = {
  id: '0b7a3c4e-5f60-4a1b-8c2d-3e4f5a6b7c8d',
  stream: 'call-1',
  type: 'status-update',
  data: { raw: 'nul \u0000, lone surrogate \ud800, \u{1f4de}', nested: [1, null, { a: '"' }] },
  metadata: { receivedAt: '2026-01-01T00:00:00.000Z' },
  journaledAt: 1_767_225_600_000,
};

/** Bytes with a correct checksum around any JSON text. */
const checksummed = (json: string): Buffer => {
  const body = Buffer.from(json);
  const bytes = Buffer.alloc(4 + body.length);
  bytes.writeUInt32BE(crc32(body), 0);
  body.copy(bytes, 4);
  return bytes;
};

describe('journal records', () => {
  it('come back as written', () => {
    expect(decodeRecord(encodeRecord(record))).toEqual(record);
  });

  it('are refused when cut short or altered', () => {
    const bytes = encodeRecord(record);
    expect(decodeRecord(bytes.subarray(0, 3))).toBe('record too short');
    const altered = Buffer.from(bytes);
    altered.writeUInt8(altered.readUInt8(altered.length - 2) ^ 1, altered.length - 2);
    expect(decodeRecord(altered)).toBe('checksum mismatch');
    expect(decodeRecord(checksummed('{"id":'))).toBe('not JSON');
  });

  it('are refused when the JSON is not of a record’s shape', () => {
    const { journaledAt: _, ...withoutTime } = record;
    for (const other of [
      withoutTime,
      { ...record, id: '' },
      { ...record, stream: 7 },
      { ...record, journaledAt: '2026-01-01' },
      [record],
      null,
      'a string',
    ]) {
      expect(decodeRecord(checksummed(JSON.stringify(other)))).toBe('not a journal record');
    }
  });
});
