/**
 * `calltrail export terminations --from T --to T [--outcome O] [--assistant A] --out FILE`: the same
 * terminations CSV as `GET /exports/terminations.csv` (same module, same query), written to a file
 * with a progress bar on stderr. The file appears only when complete: rows go to `FILE.partial`,
 * renamed into place at the end and removed on failure or interruption.
 */
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Presets, SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import type pg from 'pg';
import { InvalidArgumentError } from '../errors.ts';
import { parseTimeRange } from '../audit/parameters.ts';
import {
  countTerminations,
  openTerminationsCsv,
  terminationOutcomes,
  type TerminationOutcome,
  type TerminationsFilter,
} from '../audit/terminations-csv.ts';
import type { EventStore } from '../event-store/event-store.ts';
import { writeManifestFile } from '../sealing/manifest.ts';
import { resolveSigningKey } from '../sealing/sealing-setup.ts';
import type { SigningKey } from '../sealing/signing-key.ts';
import { planStores } from '../stores/plan.ts';
import { openCommandStores } from './command-setup.ts';
import { registerEvidenceExportCommand } from './export-evidence.ts';

export interface ExportOptions {
  readonly from?: string | undefined;
  readonly to?: string | undefined;
  readonly outcome?: string | undefined;
  readonly assistant?: string | undefined;
  readonly out?: string | undefined;
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Checks the options as the HTTP route checks its query; a bad one names the option. */
export const parseExportOptions = (options: ExportOptions): { filter: TerminationsFilter; out: string } => {
  for (const name of ['from', 'to', 'out'] as const) {
    if (options[name] === undefined || options[name] === '') throw new UsageError(`--${name}: is required`);
  }
  let range;
  try {
    range = parseTimeRange(options, '--');
  } catch (error) {
    if (error instanceof InvalidArgumentError) throw new UsageError(error.message);
    throw error;
  }
  const outcome = options.outcome;
  if (outcome !== undefined && !terminationOutcomes.includes(outcome as TerminationOutcome)) {
    throw new UsageError(`--outcome: must be one of ${terminationOutcomes.join(', ')}`);
  }
  const assistant = options.assistant;
  if (assistant !== undefined && (assistant === '' || [...assistant].some((c) => c.charCodeAt(0) < 0x20))) {
    throw new UsageError('--assistant: must be a non-empty number without control characters');
  }
  return {
    filter: { ...range, outcome: outcome as TerminationOutcome | undefined, assistant },
    out: options.out!,
  };
};

/** Writes the CSV to `out`; resolves with the number of data rows. */
export const runExport = async (
  request: { readonly filter: TerminationsFilter; readonly out: string },
  dependencies: {
    readonly pool: pg.Pool;
    readonly progress?: NodeJS.WritableStream;
    readonly signal?: AbortSignal;
    /** With both, the finished file gets a signed manifest beside it (`FILE.manifest.json`). */
    readonly manifest?: { readonly eventStore: EventStore; readonly key: SigningKey };
  },
): Promise<number> => {
  const total = await countTerminations(dependencies.pool, request.filter);
  const bar = new SingleBar(
    {
      format: 'terminations |{bar}| {value}/{total} rows | {percentage}% | ETA {eta_formatted}',
      stream: dependencies.progress ?? process.stderr,
      hideCursor: true,
    },
    Presets.shades_classic,
  );
  bar.start(total, 0);
  const partial = `${request.out}.partial`;
  const csv = await openTerminationsCsv(dependencies.pool, request.filter);
  // Rows may be added while the export runs; the bar grows with them.
  const ticker = setInterval(() => {
    const rows = csv.rows();
    if (rows > total) bar.setTotal(rows);
    bar.update(rows);
  }, 200);
  try {
    await pipeline(
      csv.stream,
      createWriteStream(partial),
      dependencies.signal ? { signal: dependencies.signal } : {},
    );
    const { rows } = await csv.finished;
    await rename(partial, request.out);
    if (dependencies.manifest !== undefined) {
      const { filter } = request;
      await writeManifestFile(
        request.out,
        {
          kind: 'terminations-csv',
          query: {
            from: filter.from?.toISOString() ?? null,
            to: filter.to?.toISOString() ?? null,
            outcome: filter.outcome ?? null,
            assistant: filter.assistant ?? null,
          },
          count: rows,
        },
        { ...dependencies.manifest, now: new Date() },
      );
    }
    bar.setTotal(Math.max(total, rows));
    bar.update(rows);
    return rows;
  } catch (error) {
    csv.stream.destroy();
    await rm(partial, { force: true });
    throw error;
  } finally {
    clearInterval(ticker);
    bar.stop();
  }
};

export const registerExportCommand = (program: Command): void => {
  const exportCommand = program.command('export').description('export read models and evidence as files');
  registerEvidenceExportCommand(exportCommand);
  exportCommand
    .command('terminations')
    .description(
      'write ended calls as CSV (RFC 4180, UTF-8, CRLF), the same file as GET /exports/terminations.csv',
    )
    .requiredOption('--from <time>', 'calls that ended at or after this time (ISO 8601 with a zone)')
    .requiredOption('--to <time>', 'calls that ended before this time (exclusive)')
    .option('--outcome <outcome>', `only this outcome: ${terminationOutcomes.join(' or ')}`)
    .option('--assistant <number>', "only this assistant's number")
    .requiredOption('--out <file>', 'the CSV file to write (replaced when complete)')
    .action(async (options: ExportOptions, command: Command) => {
      let request;
      try {
        request = parseExportOptions(options);
      } catch (error) {
        if (error instanceof UsageError) command.error(`error: ${error.message}`, { exitCode: 2 });
        throw error;
      }
      const { config, logger, stores } = await openCommandStores(command);
      const abort = new AbortController();
      const interrupt = () => abort.abort();
      process.once('SIGINT', interrupt);
      try {
        const key = (await resolveSigningKey(config, planStores(config).embeddedDefault))?.key;
        const rows = await runExport(request, {
          pool: stores.database.pool,
          signal: abort.signal,
          ...(key === undefined ? {} : { manifest: { eventStore: stores.eventStore, key } }),
        });
        process.stderr.write(
          `wrote ${rows} rows to ${request.out}` +
            (key === undefined ? ' (no sealing key: no signed manifest)\n' : ' and its signed manifest\n'),
        );
      } catch (error) {
        if (abort.signal.aborted) {
          process.stderr.write('export interrupted; no file written\n');
          process.exitCode = 130;
        } else {
          logger.error({ err: error }, 'export failed');
          process.exitCode = 1;
        }
      } finally {
        process.off('SIGINT', interrupt);
        await stores.close();
      }
    });
};
