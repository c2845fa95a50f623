/**
 * Projection catch-up: from N events in the store to caught-up read models, through the projector
 * (`startProjector`, every projection, in a process of its own), against the ceiling: the same rows
 * the projector produced, written by multi-row `unnest` INSERTs (1,000 rows a statement, 50
 * statements a transaction) into tables with identical definitions, indexes and constraints.
 * The ceiling's rows are read beforehand, outside its timing.
 */
import pg from 'pg';
import { projections } from '../projections/registry.ts';
import type { BenchContext } from './context.ts';
import { cpuMicrosPer, startCpuMeter } from './measure.ts';
import { formatMicros, formatPercent, formatRate, type BenchmarkResult } from './report.ts';

// Every table the projections write (the health summaries the calls projection keeps beside calls
// and terminations included): the ceiling writes the same rows.
const readModelTables = projections.flatMap((projection) => projection.tables);
const rowsPerStatement = 1000;
const statementsPerTransaction = 50;
const baselineSchema = 'bench_raw_insert';

interface Column {
  readonly name: string;
  readonly type: string;
}

const columnsOf = async (client: pg.Client, table: string): Promise<Column[]> => {
  const { rows } = await client.query<Column>(
    `SELECT attname AS name, format_type(atttypid, NULL) AS type FROM pg_attribute
      WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum`,
    [`public.${table}`],
  );
  return rows;
};

interface TableInsert {
  readonly table: string;
  readonly rows: number;
  readonly seconds: number;
  /** CPU seconds spent in the timed parts: this process (building and sending) and PostgreSQL. */
  readonly cpu: { node: number; postgres: number };
}

/** Inserts a copy of `table`'s rows into its twin; only the inserts and commits are timed. */
const rawInsert = async (
  reader: pg.Client,
  writer: pg.Client,
  table: string,
  postmasterPid: number | undefined,
): Promise<TableInsert> => {
  const columns = await columnsOf(reader, table);
  const insert =
    `INSERT INTO ${baselineSchema}.${table} (${columns.map((c) => c.name).join(', ')}) ` +
    `SELECT * FROM unnest(${columns.map((c, i) => `$${i + 1}::${c.type}[]`).join(', ')})`;
  const batch = rowsPerStatement * statementsPerTransaction;
  let rows = 0;
  let seconds = 0;
  const cpu = { node: 0, postgres: 0 };
  await reader.query('BEGIN READ ONLY');
  try {
    // Text values: what the projector sends too, and no parsing cost on this side.
    await reader.query(
      `DECLARE source NO SCROLL CURSOR FOR SELECT ${columns.map((c) => `${c.name}::text`).join(', ')} FROM public.${table}`,
    );
    for (;;) {
      const { rows: fetched } = await reader.query<(string | null)[]>({
        text: `FETCH ${batch} FROM source`,
        rowMode: 'array',
      });
      if (fetched.length === 0) break;
      const started = performance.now();
      const meter = startCpuMeter(process.pid, postmasterPid);
      await writer.query('BEGIN');
      for (let offset = 0; offset < fetched.length; offset += rowsPerStatement) {
        const slice = fetched.slice(offset, offset + rowsPerStatement);
        await writer.query(
          insert,
          columns.map((_, index) => slice.map((row) => row[index] ?? null)),
        );
      }
      await writer.query('COMMIT');
      seconds += (performance.now() - started) / 1000;
      const used = meter.stop();
      cpu.node += used.processSeconds ?? 0;
      cpu.postgres += used.postgresSeconds ?? 0;
      rows += fetched.length;
    }
  } finally {
    await reader.query('ROLLBACK');
  }
  return { table, rows, seconds, cpu };
};

export const benchProjection = async (context: BenchContext): Promise<BenchmarkResult> => {
  const dataset = await context.projectedDataset();
  const { projection, summary } = dataset;
  const projectorRate = summary.events / projection.seconds;

  context.progress('projection: ceiling, raw unnest inserts of the same rows');
  const reader = new pg.Client(dataset.url);
  const writer = new pg.Client(dataset.url);
  await reader.connect();
  await writer.connect();
  const inserts: TableInsert[] = [];
  let writes: Record<string, unknown>[] = [];
  try {
    // What the projector's statements did to each table: rows rewritten cost more than rows added.
    writes = (
      await writer.query<Record<string, unknown>>(
        `SELECT relname AS table, n_tup_ins AS inserted, n_tup_upd AS updated, n_tup_hot_upd AS hot_updated,
                n_dead_tup AS dead
           FROM pg_stat_user_tables WHERE schemaname = 'public' AND relname = ANY($1::text[])`,
        [[...readModelTables]],
      )
    ).rows;
    await writer.query(`DROP SCHEMA IF EXISTS ${baselineSchema} CASCADE; CREATE SCHEMA ${baselineSchema}`);
    for (const table of readModelTables) {
      await writer.query(`CREATE TABLE ${baselineSchema}.${table} (LIKE public.${table} INCLUDING ALL)`);
    }
    for (const table of readModelTables) {
      inserts.push(await rawInsert(reader, writer, table, context.postgres.pid));
    }
    await writer.query(`DROP SCHEMA ${baselineSchema} CASCADE`);
  } finally {
    await reader.end();
    await writer.end();
  }
  const rawSeconds = inserts.reduce((sum, insert) => sum + insert.seconds, 0);
  const rawRate = summary.events / rawSeconds;
  const ratio = projectorRate / rawRate;
  const rowsWritten = inserts.reduce((sum, insert) => sum + insert.rows, 0);
  const rawCpu = {
    node: inserts.reduce((sum, insert) => sum + insert.cpu.node, 0),
    postgres: inserts.reduce((sum, insert) => sum + insert.cpu.postgres, 0),
  };
  return {
    name: 'projection',
    rows: [
      {
        measure: 'catch-up, all projections',
        value: formatRate(projectorRate, 'events'),
        ceiling: formatRate(rawRate, 'events'),
        ratio,
        target: { description: '>= 50% of raw insert', pass: ratio >= 0.5 },
      },
      {
        measure: 'wall time',
        value: `${projection.seconds.toFixed(1)} s`,
        ceiling: `${rawSeconds.toFixed(1)} s`,
      },
      {
        measure: 'CPU per event (Node + PostgreSQL)',
        value: `${formatMicros(cpuMicrosPer(projection.cpu.processSeconds, summary.events))} + ${formatMicros(cpuMicrosPer(projection.cpu.postgresSeconds, summary.events))}`,
        ceiling: `${formatMicros(cpuMicrosPer(rawCpu.node, summary.events))} + ${formatMicros(cpuMicrosPer(rawCpu.postgres, summary.events))}`,
        ...(projection.cpu.processSeconds !== undefined && projection.cpu.postgresSeconds !== undefined
          ? {
              ratio:
                (rawCpu.node + rawCpu.postgres) /
                (projection.cpu.processSeconds + projection.cpu.postgresSeconds),
            }
          : {}),
      },
      ...Object.entries(projection.finishedAfter).map(([name, seconds]) => ({
        measure: `  ${name} caught up after`,
        value: `${seconds.toFixed(1)} s`,
      })),
    ],
    details: {
      events: summary.events,
      calls: summary.calls,
      projectorSeconds: projection.seconds,
      projectorFinishedAfter: projection.finishedAfter,
      projectorCpu: projection.cpu,
      projectorWrites: writes,
      rawInsert: { rowsPerStatement, statementsPerTransaction, tables: inserts, seconds: rawSeconds },
      ratio,
    },
    notes: [
      `${summary.events.toLocaleString('en-US')} events -> ${rowsWritten.toLocaleString('en-US')} read-model rows ` +
        `(${inserts.map((insert) => `${insert.table} ${insert.rows.toLocaleString('en-US')}`).join(', ')}); ` +
        `CPU while catching up: projector ${projection.cpu.processCores ?? '?'} cores, PostgreSQL ` +
        `${projection.cpu.postgresCores ?? '?'}, whole machine ${projection.cpu.machineCores ?? '?'} of 2 (the rest is other users of the machine; ` +
        `the CPU ratio, total CPU per event raw / projector, does not depend on them; wall-clock ratio ${formatPercent(ratio)})`,
    ],
  };
};
