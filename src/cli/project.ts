/**
 * `calltrail project`: runs only the projector, keeping the read models caught up with the event
 * store until SIGINT or SIGTERM (then it stops after the batch in flight; a second signal exits at
 * once). Several may run at once, and next to `calltrail serve`: per projection one applies events,
 * the others stand by to take over.
 */
import type { Command } from 'commander';
import { createMetrics } from '../metrics.ts';
import { startProjector } from '../projector/projector.ts';
import { runWorkerCommand } from './worker-command.ts';

/** Runs until a shutdown signal; resolves with the exit code. */
export const project = (): Promise<number> =>
  runWorkerCommand({
    name: 'projector',
    inFlight: 'the batch in flight',
    start: (stores, logger) =>
      startProjector({
        eventStore: stores.eventStore,
        database: stores.database,
        logger,
        metrics: createMetrics({ collectProcessMetrics: true }),
        clock: () => new Date(),
      }),
  });

export const registerProjectCommand = (program: Command): void => {
  program
    .command('project')
    .description('run only the projector: keep the read models caught up with the event store')
    .action(async () => {
      process.exitCode = await project();
    });
};
