/**
 * A journal record read back: what was written comes back whole, its data and metadata as the very
 * JSON text they were journaled as (so the drain stores exactly the bytes a live append would), and
 * bytes that are not a record (cut short, altered, valid JSON of another shape) are named as such
 * rather than drained. Records written before data and metadata were kept as text still read.
 */
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { JsonText } from '../../src/event-store/event-store.ts';
import { decodeRecord, encodeRecord, type JournalRecord } from '../../src/journal/journal.ts';

const data = { raw: 'nul \u0000, lone surrogate \ud800, \u{1f4de}', nested: [1, null, { a: '"' }] };
const metadata = { receivedAt: '2026-01-01T00:00:00.000Z' };

const record: JournalRecord = {
  id: '0b7a3c4e-5f60-4a1b-8c2d-3e4f5a6b7c8d',
  stream: 'call-1',
  type: 'status-update',
  data: new JsonText(JSON.stringify(data)),
  metadata: new JsonText(JSON.stringify(metadata)),
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

const stored = {
  id: record.id,
  stream: record.stream,
  type: record.type,
  dataJson: record.data.text,
  metadataJson: record.metadata.text,
  journaledAt: record.journaledAt,
};

describe('journal records', () => {
  it('come back as written, data and metadata as the same JSON text', () => {
    const decoded = decodeRecord(encodeRecord(record));
    if (typeof decoded === 'string') throw new Error(decoded);
    expect(decoded).toEqual(record);
    expect(decoded.data).toBeInstanceOf(JsonText);
    expect(decoded.data.text).toBe(JSON.stringify(data));
    expect(JSON.parse(decoded.data.text)).toEqual(data);
    expect(decoded.metadata.text).toBe(JSON.stringify(metadata));
  });

  it('keep data and metadata as text: the payload is not a JSON value inside the record', () => {
    const json = encodeRecord(record).subarray(4).toString('utf8');
    expect(JSON.parse(json)).toEqual(stored);
  });

  it('read back when written with data and metadata as JSON values', () => {
    const { dataJson: _data, metadataJson: _metadata, ...fields } = stored;
    const decoded = decodeRecord(checksummed(JSON.stringify({ ...fields, data, metadata })));
    expect(decoded).toEqual(record);
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
    const { journaledAt: _, ...withoutTime } = stored;
    const { dataJson: _data, ...withoutData } = stored;
    for (const other of [
      withoutTime,
      withoutData,
      { ...stored, id: '' },
      { ...stored, stream: 7 },
      { ...stored, journaledAt: '2026-01-01' },
      { ...stored, dataJson: { nested: true } },
      [stored],
      null,
      'a string',
    ]) {
      expect(decodeRecord(checksummed(JSON.stringify(other)))).toBe('not a journal record');
    }
  });
});
