/**
 * `calltrail rebuild [--projection NAME]`: replays the event streams into fresh shadow tables and
 * swaps them in once caught up (see `src/projector/rebuild.ts`); safe while ingest and the projector
 * run. Without `--projection`, rebuilds every projection, one after the other. Progress (events,
 * rate, ETA) goes to stderr.
 */
import { Presets, SingleBar } from 'cli-progress';
import { Option, type Command } from 'commander';
import { callStreamPrefix } from '../archive/streams.ts';
import { createMetrics } from '../metrics.ts';
import { projectionNamed, projectionNames } from '../projector/projections.ts';
import { defaultRebuildOptions, rebuildProjection, type RebuildProgress } from '../projector/rebuild.ts';
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
      try {
        for (const name of selected) {
          const bar = new SingleBar(
            {
              format: `${name} |{bar}| {value}/{total} events | {rate} events/s | ETA {eta_formatted} | {phase}`,
              stream: process.stderr,
              hideCursor: true,
              noTTYOutput: true,
              notTTYSchedule: 5_000,
            },
            Presets.shades_classic,
          );
          const started = Date.now();
          bar.start(1, 0, { rate: 0, phase: 'starting' });
          try {
            const result = await rebuildProjection(
              projectionNamed(name),
              {
                eventStore: stores.eventStore,
                pool: stores.database.pool,
                logger,
                metrics,
                clock: () => new Date(),
              },
              {
                ...defaultRebuildOptions,
                streamPrefixes: [callStreamPrefix],
                onProgress: (progress) => {
                  const seconds = Math.max((Date.now() - started) / 1000, 0.001);
                  bar.setTotal(Math.max(progress.estimatedTotal, 1));
                  bar.update(progress.events, {
                    rate: Math.round(progress.events / seconds),
                    phase: phaseLabels[progress.phase],
                  });
                },
              },
            );
            bar.stop();
            process.stderr.write(
              `${name}: rebuilt from ${result.events} events` +
                (result.deadLettered > 0 ? ` (${result.deadLettered} new dead letters)` : '') +
                ` in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
            );
          } catch (error) {
            bar.stop();
            logger.error(
              { err: error, projection: name },
              'rebuild failed; its live read models are unchanged',
            );
            process.exitCode = 1;
            return;
          }
        }
      } finally {
        await stores.close();
      }
    });
};
