/**
 * `calltrail rebuild [--projection NAME]`: replays the event streams into fresh shadow tables and
 * swaps them in once caught up (see `src/projector/rebuild.ts`); safe while ingest and the projector
 * run. Without `--projection`, rebuilds every projection: one replay of the streams fills all their
 * shadow tables, then each is caught up and swapped in, one after the other. Progress (events, rate,
 * ETA, one bar per projection) goes to stderr.
 */
import { MultiBar, Presets } from 'cli-progress';
import { Option, type Command } from 'commander';
import { createMetrics } from '../metrics.ts';
import { streamPrefixesOf } from '../../projections/projection.ts';
import { projectionNamed, projectionNames } from '../../projections/registry.ts';
import { defaultRebuildOptions, rebuildProjections, type RebuildProgress } from '../projector/rebuild.ts';
import { openCommandStores } from './command-setup.ts';

const phaseLabels: Record<RebuildProgress['phase'], string> = {
  replaying: 'replaying',
  indexing: 'indexing',
  'catching-up': 'catching up',
  swapping: 'swapping in',
  done: 'done',
};

export const registerRebuildCommand = (program: Command): void => {
  program
    .command('rebuild')
    .description('rebuild read models from the event streams, swapping them in atomically once caught up')
    .addOption(
      new Option('--projection <name>', 'rebuild only this projection (default: all)').choices(
        projectionNames,
      ),
    )
    .action(async (options: { projection?: string }, command: Command) => {
      const { logger, stores } = await openCommandStores(command);
      const selected = options.projection === undefined ? projectionNames : [options.projection];
      const metrics = createMetrics();
      const bars = new MultiBar(
        {
          format: `{projection} |{bar}| {value}/{total} events | {rate} events/s | ETA {eta_formatted} | {phase}`,
          stream: process.stderr,
          hideCursor: true,
          noTTYOutput: true,
          notTTYSchedule: 5_000,
        },
        Presets.shades_classic,
      );
      const barOf = new Map(
        selected.map((name) => [name, bars.create(1, 0, { projection: name, rate: 0, phase: 'starting' })]),
      );
      /** When each projection was swapped in, in seconds since the start. */
      const swappedAfter = new Map<string, number>();
      const started = Date.now();
      try {
        const results = await rebuildProjections(
          selected.map(projectionNamed),
          {
            eventStore: stores.eventStore,
            pool: stores.database.pool,
            logger,
            metrics,
            clock: () => new Date(),
          },
          {
            ...defaultRebuildOptions,
            streamPrefixes: [...new Set(selected.flatMap((name) => streamPrefixesOf(projectionNamed(name))))],
            onProgress: (progress) => {
              const seconds = Math.max((Date.now() - started) / 1000, 0.001);
              if (progress.phase === 'done') swappedAfter.set(progress.projection, seconds);
              const bar = barOf.get(progress.projection);
              bar?.setTotal(Math.max(progress.estimatedTotal, 1));
              bar?.update(progress.events, {
                rate: Math.round(progress.events / seconds),
                phase: phaseLabels[progress.phase],
              });
            },
          },
        );
        bars.stop();
        for (const result of results) {
          process.stderr.write(
            `${result.projection}: rebuilt from ${result.events} events` +
              (result.deadLettered > 0 ? ` (${result.deadLettered} new dead letters)` : '') +
              ` in ${(swappedAfter.get(result.projection) ?? 0).toFixed(1)} s\n`,
          );
        }
      } catch (error) {
        bars.stop();
        const swapped = [...swappedAfter.keys()];
        logger.error(
          { err: error, swapped },
          swapped.length === 0
            ? 'rebuild failed; the live read models are unchanged'
            : 'rebuild failed; the live read models are unchanged but for the projections swapped in',
        );
        process.exitCode = 1;
      } finally {
        await stores.close();
      }
    });
};
