/**
 * `GET /exports/terminations.csv` and `calltrail export terminations`: the CSV parses back to the
 * read model (hostile strings included), follows RFC 4180 and the formula rule, streams with its
 * connection released whether the client reads to the end or goes away, and the CLI writes the
 * very same bytes.
 */
import { request as httpRequest } from 'node:http';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { terminations, type TerminationRow } from '../../projections/terminations/read-model.ts';
import { parseExportOptions, runExport } from '../../src/cli/export.ts';
import {
  recordedCallEvent,
  statusUpdate,
  endOfCallReport,
  type CallEventSpec,
} from '../support/call-events.ts';
import type { TestApp } from '../support/app.ts';
import {
  bearer,
  openAuditStores,
  runTag,
  startAuditApp,
  writeReadModels,
  type AuditStores,
} from './support.ts';

const tag = runTag();
const id = (name: string) => `${name}-${tag}`;

const hostile = [
  'plain reason',
  'comma, inside',
  'a "quoted" word',
  'line one\nline two',
  'windows\r\nbreak',
  "=cmd|' /C calc'!A0",
  '=HYPERLINK("http://evil.example","click")',
  '+SUM(1,2)',
  '-2+3',
  '@SUM(A1)',
  '\tleading tab',
  '\rleading carriage return',
  "'already quoted",
  'ünïcödé — ½ ✓',
  'emoji 📞🤖 end',
  '',
  ' leading space',
];

const callers = [
  '+31612345678',
  '=1+1',
  '+31 6 1234',
  '-31612345678',
  '@home',
  '+',
  '+1234567890123456789012',
  null,
];

let stores: AuditStores;
let harness: TestApp;
let scratch: string;

const events = hostile.flatMap((reason, index): CallEventSpec[] => {
  const callId = id(`t${String(index).padStart(2, '0')}`);
  const at = new Date(Date.UTC(2026, 2, 1, 10, index)).toISOString();
  const ended = new Date(Date.UTC(2026, 2, 1, 10, index, 30, index)).toISOString();
  const caller = callers[index % callers.length]!;
  const assistant = index % 3 === 0 ? '+4930111111' : '+4930222222';
  return index % 2 === 0
    ? [
        statusUpdate(callId, 'in-progress', at, { caller, assistant }),
        statusUpdate(callId, 'ended-with-debugging', ended, {
          caller,
          assistant,
          endedReason: reason,
          debuggingArtifact: `${reason} | trace`,
        }),
      ]
    : [
        statusUpdate(callId, 'in-progress', at, { caller, assistant }),
        statusUpdate(callId, 'ended', ended, { caller, assistant }),
        endOfCallReport(callId, ended, {
          caller,
          assistant,
          endedReason: reason,
          durationSeconds: 30.25 + index,
        }),
      ];
});

const formulaStart = /^[=+\-@\t\r]/;
const text = (value: string | null): string =>
  value !== null && formulaStart.test(value) ? `'${value}` : (value ?? '');
const phone = (value: string | null): string =>
  value !== null && formulaStart.test(value) && !/^\+[0-9]{1,20}$/.test(value) ? `'${value}` : (value ?? '');
const time = (value: Date | null): string => (value === null ? '' : value.toISOString());

/** What the documented CSV rules make of a read-model row. */
const expectedRecord = (row: TerminationRow): Record<string, string> => ({
  call_id: text(row.callId),
  outcome: text(row.outcome),
  ended_reason: text(row.endedReason),
  debugging_artifact: text(row.debuggingArtifact),
  started_at: time(row.startedAt),
  ended_at: time(row.endedAt),
  duration_seconds: row.durationSeconds === null ? '' : String(row.durationSeconds),
  caller: phone(row.caller),
  assistant: phone(row.assistant),
});

const header =
  'call_id,outcome,ended_reason,debugging_artifact,started_at,ended_at,duration_seconds,caller,assistant';

const readModel = async (): Promise<TerminationRow[]> =>
  (await stores.database.db.select().from(terminations)).sort(
    (a, b) => a.endedAt.getTime() - b.endedAt.getTime() || (a.callId < b.callId ? -1 : 1),
  );

const exportCsv = async (query = '') =>
  harness.app.inject({ method: 'GET', url: `/exports/terminations.csv${query}`, headers: bearer() });

const records = (csv: string) =>
  parse<Record<string, string>>(csv, { columns: true, record_delimiter: '\r\n', bom: false });

const counterValue = async (
  counter: { get(): Promise<{ values: { labels: object; value: number }[] }> },
  labels: object,
) =>
  (await counter.get()).values.find((value) => JSON.stringify(value.labels) === JSON.stringify(labels))
    ?.value ?? 0;

beforeAll(async () => {
  stores = await openAuditStores('postgres');
  harness = await startAuditApp(stores);
  const byCall = new Map<string, CallEventSpec[]>();
  for (const spec of events) byCall.set(spec.callId, [...(byCall.get(spec.callId) ?? []), spec]);
  await writeReadModels(
    stores.database,
    [...byCall.values()].flatMap((specs) =>
      specs.map((spec, revision) => recordedCallEvent(spec, BigInt(revision))),
    ),
  );
  scratch = await mkdtemp(path.join(os.tmpdir(), 'calltrail-export-'));
});

afterAll(async () => {
  await harness?.app.close();
  await stores?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe('GET /exports/terminations.csv', () => {
  it('is RFC 4180 CSV that parses back to the read model, hostile strings included', async () => {
    const response = await exportCsv();
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/csv; charset=utf-8; header=present');
    expect(response.headers['content-disposition']).toContain('terminations.csv');
    const csv = response.body;
    expect(csv.startsWith(`${header}\r\n`)).toBe(true);
    expect(csv.endsWith('\r\n')).toBe(true);
    expect(response.rawPayload.subarray(0, 3).equals(Buffer.from([0xef, 0xbb, 0xbf]))).toBe(false);

    const rows = await readModel();
    expect(rows).toHaveLength(hostile.length);
    expect(records(csv)).toEqual(rows.map(expectedRecord));
    // Each row ends with CRLF; bare LFs occur only inside quoted values that hold them.
    const unquoted = csv.replace(/"(?:[^"]|"")*"/g, '');
    expect(unquoted.split('\r\n').length - 1).toBe(rows.length + 1);
    expect(unquoted.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
  });

  it('neutralizes formulas in text cells and keeps E.164 numbers verbatim', async () => {
    const parsed = records((await exportCsv()).body);
    const reasons = parsed.map((record) => record['ended_reason']);
    expect(reasons).toContain("'=cmd|' /C calc'!A0");
    expect(reasons).toContain("'+SUM(1,2)");
    expect(reasons).toContain("'-2+3");
    expect(reasons).toContain("'@SUM(A1)");
    expect(reasons).toContain("'\tleading tab");
    expect(reasons).toContain("'\rleading carriage return");
    expect(reasons).toContain("'already quoted");
    expect(reasons).toContain('emoji 📞🤖 end');
    expect(reasons).toContain('line one\nline two');
    const numbers = new Set(parsed.map((record) => record['caller']));
    expect(numbers).toContain('+31612345678');
    expect(numbers).toContain("'=1+1");
    expect(numbers).toContain("'+31 6 1234");
    expect(numbers).toContain("'-31612345678");
    expect(numbers).toContain("'@home");
    expect(numbers).toContain("'+");
    expect(numbers).toContain("'+1234567890123456789012");
    for (const record of parsed) {
      for (const column of [
        'call_id',
        'outcome',
        'ended_reason',
        'debugging_artifact',
        'caller',
        'assistant',
      ]) {
        const cell = record[column]!;
        if (formulaStart.test(cell)) expect(cell).toMatch(/^\+[0-9]{1,20}$/);
      }
      expect(record['ended_at']).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    }
  });

  it('keeps an empty string apart from a missing value', async () => {
    const csv = (await exportCsv()).body;
    const emptyReasonRow = csv.split('\r\n').find((line) => line.includes(id('t15')));
    expect(emptyReasonRow).toBeDefined();
    // t15: ended via report with an empty reason; no debugging artifact (NULL).
    expect(emptyReasonRow).toMatch(new RegExp(`^${id('t15')},ended,"",,`));
  });

  it('filters by end time (half-open), outcome and assistant', async () => {
    const rows = await readModel();
    const from = new Date('2026-03-01T10:03:00.000Z');
    const to = rows[10]!.endedAt;
    const ids = async (query: string) =>
      records((await exportCsv(query)).body).map((record) => record['call_id']);
    expect(await ids(`?from=${from.toISOString()}&to=${to.toISOString()}`)).toEqual(
      rows.filter((row) => row.endedAt >= from && row.endedAt < to).map((row) => row.callId),
    );
    expect(await ids('?outcome=ended-with-debugging')).toEqual(
      rows.filter((row) => row.outcome === 'ended-with-debugging').map((row) => row.callId),
    );
    expect(await ids('?assistant=%2B4930111111&outcome=ended')).toEqual(
      rows
        .filter((row) => row.assistant === '+4930111111' && row.outcome === 'ended')
        .map((row) => row.callId),
    );
    expect((await exportCsv('?from=2030-01-01T00:00:00Z')).body).toBe(`${header}\r\n`);
  });

  it.each([
    ['?from=soon', 'querystring/from'],
    ['?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z', 'querystring/from'],
    ['?outcome=in-progress', 'querystring/outcome'],
    ['?assistant=', 'querystring/assistant'],
    ['?format=xlsx', 'querystring/format'],
  ])('%s is a 400 naming %s', async (query, field) => {
    const response = await exportCsv(query);
    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.json<{ errors: { field: string }[] }>().errors.map((error) => error.field)).toContain(
      field,
    );
  });

  it('counts exports and rows', async () => {
    // An app of its own, so no earlier export can still be settling into these counters.
    const counted = await startAuditApp(stores);
    try {
      const response = await counted.app.inject({
        method: 'GET',
        url: '/exports/terminations.csv?outcome=ended',
        headers: bearer(),
      });
      expect(response.statusCode).toBe(200);
      const ended = (await readModel()).filter((row) => row.outcome === 'ended').length;
      expect(ended).toBeGreaterThan(0);
      await expect
        .poll(() => counterValue(counted.metrics.exports, { kind: 'terminations', outcome: 'completed' }))
        .toBe(1);
      expect(await counterValue(counted.metrics.exportedRows, { kind: 'terminations' })).toBe(ended);
      expect(await counterValue(counted.metrics.exports, { kind: 'terminations', outcome: 'failed' })).toBe(
        0,
      );
    } finally {
      await counted.app.close();
    }
  });
});

describe('streaming', () => {
  const bulkRows = 200_000;
  let baseUrl: string;

  beforeAll(async () => {
    await stores.database.pool.query(
      `INSERT INTO terminations (call_id, outcome, ended_reason, debugging_artifact, started_at, ended_at,
         duration_seconds, caller, assistant, last_commit_position, last_prepare_position)
       SELECT 'bulk-' || n, 'ended', 'customer-ended-call', NULL, timestamptz '2027-01-01' + n * interval '1 second',
         timestamptz '2027-01-01' + n * interval '1 second' + interval '90 seconds', 90, '+3161' || n, '+4930111111', n, n
       FROM generate_series(1, ${bulkRows}) AS n`,
    );
    baseUrl = await harness.app.listen({ host: '127.0.0.1', port: 0 });
  });

  const copyRunning = async (): Promise<number> =>
    Number(
      (
        await stores.database.pool.query<{ count: string }>(
          "SELECT count(*)::text AS count FROM pg_stat_activity WHERE query LIKE 'COPY (SELECT%' AND pid <> pg_backend_pid()",
        )
      ).rows[0]!.count,
    );

  it('streams a large export to the end and returns its connection', async () => {
    const response = await fetch(`${baseUrl}/exports/terminations.csv?from=2027-01-01T00:00:00Z`, {
      headers: bearer(),
    });
    expect(response.status).toBe(200);
    let bytes = 0;
    let lineEnds = 0;
    let previous = 0;
    for await (const chunk of response.body!) {
      const buffer = Buffer.from(chunk as Uint8Array);
      bytes += buffer.length;
      for (let index = 0; index < buffer.length; index += 1) {
        if (buffer[index] === 0x0a) {
          expect(index === 0 ? previous : buffer[index - 1]).toBe(0x0d);
          lineEnds += 1;
        }
      }
      previous = buffer[buffer.length - 1] ?? previous;
    }
    expect(lineEnds).toBe(bulkRows + 1);
    expect(bytes).toBeGreaterThan(bulkRows * 50);
    await expect.poll(copyRunning).toBe(0);
    expect(stores.database.pool.totalCount - stores.database.pool.idleCount).toBe(0);
  });

  it('stops the query and frees the connection when the client goes away', async () => {
    const aborted = await counterValue(harness.metrics.exports, { kind: 'terminations', outcome: 'aborted' });
    const url = new URL(`${baseUrl}/exports/terminations.csv`);
    await new Promise<void>((resolve, reject) => {
      const request = httpRequest(url, { headers: bearer() }, (response) => {
        response.once('data', () => {
          // Read one chunk, then hang up while the server still has most of the file to send.
          request.destroy();
          resolve();
        });
      });
      request.on('error', (error) =>
        (error as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve() : reject(error),
      );
      request.end();
    });
    await expect.poll(copyRunning, { timeout: 10_000 }).toBe(0);
    await expect
      .poll(() => counterValue(harness.metrics.exports, { kind: 'terminations', outcome: 'aborted' }), {
        timeout: 10_000,
      })
      .toBe(aborted + 1);
    // The API still answers, and the pool is healthy.
    const again = await exportCsv('?from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z');
    expect(records(again.body)).toHaveLength(hostile.length);
  });
});

describe('calltrail export terminations', () => {
  it('writes the same bytes as the HTTP export, via a partial file', async () => {
    const out = path.join(scratch, 'terminations.csv');
    const query = { from: '2026-03-01T00:00:00Z', to: '2026-03-02T00:00:00Z' };
    const rows = await runExport(parseExportOptions({ ...query, out }), {
      pool: stores.database.pool,
      progress: new (await import('node:stream')).PassThrough(),
    });
    expect(rows).toBe(hostile.length);
    const http = await exportCsv(`?from=${query.from}&to=${query.to}`);
    expect((await readFile(out)).equals(http.rawPayload)).toBe(true);
    expect(await readdir(scratch)).toEqual(['terminations.csv']);
  });

  it('leaves no file behind when interrupted', async () => {
    const out = path.join(scratch, 'interrupted.csv');
    const abort = new AbortController();
    abort.abort();
    await expect(
      runExport(parseExportOptions({ from: '2020-01-01T00:00:00Z', to: '2030-01-01T00:00:00Z', out }), {
        pool: stores.database.pool,
        progress: new (await import('node:stream')).PassThrough(),
        signal: abort.signal,
      }),
    ).rejects.toThrow();
    expect(await readdir(scratch)).not.toContain('interrupted.csv');
    expect(await readdir(scratch)).not.toContain('interrupted.csv.partial');
    await expect.poll(() => stores.database.pool.totalCount - stores.database.pool.idleCount).toBe(0);
  });

  it.each([
    [{ to: '2026-03-02T00:00:00Z', out: 'x.csv' }, '--from'],
    [{ from: '2026-03-01T00:00:00Z', out: 'x.csv' }, '--to'],
    [{ from: '2026-03-01T00:00:00Z', to: '2026-03-02T00:00:00Z' }, '--out'],
    [{ from: 'March', to: '2026-03-02T00:00:00Z', out: 'x.csv' }, '--from'],
    [{ from: '2026-03-03T00:00:00Z', to: '2026-03-02T00:00:00Z', out: 'x.csv' }, '--from'],
    [
      { from: '2026-03-01T00:00:00Z', to: '2026-03-02T00:00:00Z', out: 'x.csv', outcome: 'lost' },
      '--outcome',
    ],
  ])('refuses %o naming %s', (options, option) => {
    expect(() => parseExportOptions(options)).toThrow(new RegExp(`^${option}`));
  });
});
