/**
 * The CSV finisher over COPY's output: whatever the values and however the bytes are chunked, the
 * result parses back (RFC 4180, CRLF) to the documented cells — times in ISO 8601 with
 * milliseconds, formula triggers neutralized, E.164 numbers verbatim — and malformed input fails.
 */
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { parse } from 'csv-parse/sync';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CsvShapeError,
  TerminationsCsvFinisher,
  terminationsCsvColumns,
} from '../../src/audit/terminations-csv.ts';

interface Row {
  readonly call_id: string | null;
  readonly outcome: string | null;
  readonly ended_reason: string | null;
  readonly debugging_artifact: string | null;
  readonly started_at: Date | null;
  readonly ended_at: Date | null;
  readonly duration_seconds: number | null;
  readonly caller: string | null;
  readonly assistant: string | null;
}

/** A value as PostgreSQL's COPY (FORMAT csv) writes it. */
const copyValue = (value: string | null): string =>
  value === null ? '' : value === '' || /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;

/** A timestamptz as COPY writes it with TimeZone UTC and DateStyle ISO: trailing zeros trimmed. */
const copyTime = (at: Date | null): string => {
  if (at === null) return '';
  const iso = at.toISOString();
  const fraction = iso.slice(20, 23).replace(/0+$/, '');
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${fraction === '' ? '' : `.${fraction}`}+00`;
};

const copyRow = (row: Row): string =>
  [
    copyValue(row.call_id),
    copyValue(row.outcome),
    copyValue(row.ended_reason),
    copyValue(row.debugging_artifact),
    copyTime(row.started_at),
    copyTime(row.ended_at),
    row.duration_seconds === null ? '' : String(row.duration_seconds),
    copyValue(row.caller),
    copyValue(row.assistant),
  ].join(',') + '\n';

const trigger = /^[=+\-@\t\r]/;
const text = (value: string | null) => (value === null ? '' : trigger.test(value) ? `'${value}` : value);
const phone = (value: string | null) =>
  value === null ? '' : trigger.test(value) && !/^\+[0-9]{1,20}$/.test(value) ? `'${value}` : value;

const expectedRecord = (row: Row): Record<string, string> => ({
  call_id: text(row.call_id),
  outcome: text(row.outcome),
  ended_reason: text(row.ended_reason),
  debugging_artifact: text(row.debugging_artifact),
  started_at: row.started_at?.toISOString() ?? '',
  ended_at: row.ended_at?.toISOString() ?? '',
  duration_seconds: row.duration_seconds === null ? '' : String(row.duration_seconds),
  caller: phone(row.caller),
  assistant: phone(row.assistant),
});

const finish = async (chunks: readonly Buffer[]) => {
  const finisher = new TerminationsCsvFinisher();
  const output = await buffer(Readable.from(chunks).pipe(finisher));
  return { text: output.toString('utf8'), rows: finisher.rows };
};

const splitAt = (bytes: Buffer, cuts: readonly number[]): Buffer[] => {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of points) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  chunks.push(bytes.subarray(start));
  return chunks.filter((chunk) => chunk.length > 0);
};

const header = `${terminationsCsvColumns.join(',')}\r\n`;

const hostileText = fc.oneof(
  fc.string({
    unit: fc.constantFrom('=', '+', '-', '@', '\t', '\r', '\n', '"', ',', "'", 'a', '1', ' ', 'é', '📞'),
  }),
  fc.string({ unit: 'grapheme', maxLength: 8 }),
);
const e164 = fc.stringMatching(/^\+[0-9]{1,22}$/);
const time = fc.date({
  min: new Date('1970-01-01T00:00:00Z'),
  max: new Date('9999-12-31T23:59:59.999Z'),
  noInvalidDate: true,
});
const row: fc.Arbitrary<Row> = fc.record({
  call_id: fc.option(hostileText, { nil: null }),
  outcome: fc.option(fc.constantFrom('ended', 'ended-with-debugging'), { nil: null }),
  ended_reason: fc.option(hostileText, { nil: null }),
  debugging_artifact: fc.option(hostileText, { nil: null }),
  started_at: fc.option(time, { nil: null }),
  ended_at: fc.option(time, { nil: null }),
  duration_seconds: fc.option(fc.double({ noNaN: true, noDefaultInfinity: true }), { nil: null }),
  caller: fc.option(fc.oneof(e164, hostileText), { nil: null }),
  assistant: fc.option(fc.oneof(e164, hostileText), { nil: null }),
});

describe('TerminationsCsvFinisher', () => {
  it('gives the documented cells, with CRLF only at row ends, however the input is chunked', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(row, { maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 16 }),
        async (rows, cuts) => {
          const input = Buffer.from(rows.map(copyRow).join(''), 'utf8');
          const whole = await finish([input]);
          const chunked = await finish(splitAt(input, cuts));
          expect(chunked.text).toBe(whole.text);
          expect(chunked.rows).toBe(rows.length);
          expect(chunked.text.startsWith(header)).toBe(true);
          const records = parse<Record<string, string>>(chunked.text, {
            columns: true,
            record_delimiter: '\r\n',
          });
          expect(records).toEqual(rows.map(expectedRecord));
          const outsideQuotes = chunked.text.replace(/"(?:[^"]|"")*"/g, '');
          expect(outsideQuotes.split('\r\n')).toHaveLength(rows.length + 2);
          expect(outsideQuotes.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('rewrites every millisecond form of a time', async () => {
    const input = [
      'a,ended,,,2026-03-01 10:00:00+00,2026-03-01 10:00:00.5+00,,,',
      'b,ended,,,2026-03-01 10:00:00.05+00,2026-03-01 10:00:00.123+00,,,',
      '',
    ].join('\n');
    const { text: output } = await finish([Buffer.from(input)]);
    expect(output).toBe(
      `${header}a,ended,,,2026-03-01T10:00:00.000Z,2026-03-01T10:00:00.500Z,,,\r\n` +
        'b,ended,,,2026-03-01T10:00:00.050Z,2026-03-01T10:00:00.123Z,,,\r\n',
    );
  });

  it('writes only the header for no rows', async () => {
    expect((await finish([])).text).toBe(header);
  });

  it.each([
    ['a row with more columns', 'a,b,,,,,,,,x\n'],
    ['a row with fewer columns', 'a,b,,,,\n'],
    ['a time in another zone', 'a,ended,,,2026-03-01 10:00:00+01,,,,\n'],
    ['a time without seconds', 'a,ended,,,2026-03-01 10:00+00,,,,\n'],
    ['a time with microseconds', 'a,ended,,,2026-03-01 10:00:00.123456+00,,,,\n'],
    ['data after a quoted value', 'a,"x"y,,,,,,,\n'],
    ['input that stops inside a row', 'a,ended,,'],
  ])('refuses %s', async (_name, input) => {
    await expect(finish([Buffer.from(input)])).rejects.toBeInstanceOf(CsvShapeError);
  });
});
