/**
 * `npm run bench` end to end, at a size that runs in seconds: every benchmark runs against the
 * processes and embedded PostgreSQL it starts itself, and the JSON it writes holds every figure the
 * table shows, measured on the data set it says it used. Not a performance test: no figure is
 * judged here, only that each was measured.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const projectRoot = fileURLToPath(new URL('../..', import.meta.url));
const events = 2_000;

interface BenchReport {
  readonly dataset: { readonly events: number; readonly calls: number; readonly endedCalls: number };
  readonly failures: readonly unknown[];
  readonly results: readonly {
    readonly name: string;
    readonly rows: readonly { readonly measure: string; readonly value: string }[];
    readonly details: Record<string, unknown>;
  }[];
}

describe('npm run bench', () => {
  let directory: string;
  let stdout: string;
  let report: BenchReport;

  beforeAll(async () => {
    directory = await mkdtemp(path.join(os.tmpdir(), 'calltrail-bench-'));
    const out = path.join(directory, 'results.json');
    ({ stdout } = await promisify(execFile)(
      process.execPath,
      [
        path.join(projectRoot, 'node_modules', 'tsx', 'dist', 'cli.mjs'),
        'bench/main.ts',
        '--quick',
        '--events',
        String(events),
        '--load-seconds',
        '1',
        '--out',
        out,
      ],
      {
        cwd: projectRoot,
        env: Object.fromEntries(
          Object.entries(process.env).filter(([name]) => !name.startsWith('CALLTRAIL_')),
        ),
        maxBuffer: 16 * 1024 * 1024,
      },
    ));
    report = JSON.parse(await readFile(out, 'utf8')) as BenchReport;
  }, 240_000);

  afterAll(async () => {
    if (directory !== undefined) await rm(directory, { recursive: true, force: true });
  });

  it('runs every benchmark on the data set it was asked for', () => {
    expect(report.failures).toEqual([]);
    expect(report.results.map((result) => result.name)).toEqual([
      'ingest',
      'journal',
      'projection',
      'export',
      'queries',
      'health',
      'rebuild',
      'soak',
      'console',
      'forwarding',
      'relay',
      'sealing',
    ]);
    expect(report.dataset.events).toBe(events);
    expect(report.dataset.endedCalls).toBeGreaterThan(0);
    expect(report.dataset.endedCalls).toBeLessThanOrEqual(report.dataset.calls);
  });

  it('measures every figure it reports, and prints the table', () => {
    for (const result of report.results) {
      expect(result.rows.length).toBeGreaterThan(0);
      for (const row of result.rows) expect(row.value, `${result.name}: ${row.measure}`).toMatch(/\d/);
      expect(stdout).toContain(result.rows[0]!.measure);
    }
  });

  it('exports every row, stores the webhooks it sent, and rebuilds to the same read models', () => {
    const byName = Object.fromEntries(report.results.map((result) => [result.name, result.details]));
    const exportRuns = byName['export']!['runs'] as Record<string, { rows: number }[]>;
    for (const runs of Object.values(exportRuns)) {
      expect(runs.length).toBe(2);
      for (const run of runs) expect(run.rows).toBe(events);
    }
    expect(byName['ingest']!['storedEvents']).toBeGreaterThan(0);
    // Every webhook sent while the store was away was answered 2xx (journaled), then drained.
    expect(byName['journal']!['journaled']).toBeGreaterThan(0);
    expect((byName['journal']!['journaling'] as { non2xx: number }).non2xx).toBe(0);
    // The sealer's cost to ingest, in the app's process and in its own: as many loads with it as
    // without, in blocks of four.
    const beside = byName['sealing']!['ingestBesideSealer'] as Record<
      'inProcess' | 'ownProcess',
      { with: unknown[]; without: unknown[]; blockCosts: number[] }
    >;
    for (const placement of [beside.inProcess, beside.ownProcess]) {
      expect(placement.blockCosts.length).toBeGreaterThanOrEqual(3);
      expect(placement.with.length).toBe(2 * placement.blockCosts.length);
      expect(placement.without.length).toBe(2 * placement.blockCosts.length);
    }
    // The bare relays that are the relay benchmark's floor answered every request as the handler did.
    const relayRuns = byName['relay']!['runs'] as {
      floors: Record<string, { sent: number; answered: number }>;
    }[];
    for (const run of relayRuns) {
      expect(Object.keys(run.floors).sort()).toEqual(['durable', 'journal', 'proxy', 'sync']);
      for (const floor of Object.values(run.floors)) expect(floor.answered).toBe(floor.sent);
    }
    expect(byName['rebuild']!['exitCode']).toBe(0);
    expect(byName['rebuild']!['rowsAfter']).toEqual(byName['rebuild']!['rowsBefore']);
  });
});
