/**
 * `calltrail project`: runs only the projector, keeping the read models caught up with the event
 * store until SIGINT or SIGTERM (then it stops after the batch in flight; a second signal exits at
 * once). Several may run at once, and next to `calltrail serve`: per projection one applies events,
 * the others stand by to take over.
 */
import type { Command } from 'commander';
import { createLogger } from '../logger.ts';
import { createMetrics } from '../metrics.ts';
import { startProjector } from '../projector/projector.ts';
import { openStores } from '../stores/open.ts';
import { reportConnectedRole } from '../stores/runtime-role.ts';
import { trapShutdownSignals } from '../server.ts';
import { loadConfigOrReport, oneLine } from './command-setup.ts';

/** Runs until a shutdown signal; resolves with the exit code. */
export const project = async (): Promise<number> => {
  const config = loadConfigOrReport();
  if (config === undefined) return 1;
  const logger = createLogger({ level: config.logLevel });
  let resolveStop: () => void = () => {};
  const stopRequested = new Promise<void>((resolve) => {
    resolveStop = resolve;
  });
  const untrap = trapShutdownSignals(
    (signal) => {
      logger.info({ signal }, 'stopping the projector after the batch in flight');
      resolveStop();
    },
    (signal) => logger.warn({ signal }, 'second signal: exiting without waiting'),
  );
  try {
    let stores;
    try {
      stores = await openStores(config, logger);
    } catch (error) {
      logger.debug({ err: error }, 'start-up failed');
      process.stderr.write(`calltrail: could not open the stores: ${oneLine(error)}\n`);
      return 1;
    }
    try {
      reportConnectedRole(stores.connectedRole, logger);
      const projector = await startProjector({
        eventStore: stores.eventStore,
        database: stores.database,
        logger: logger.child({ component: 'projector' }),
        metrics: createMetrics({ collectProcessMetrics: true }),
        clock: () => new Date(),
      });
      logger.info(
        { eventStore: stores.locations.eventStore, readModels: stores.locations.readModels },
        'projecting',
      );
      await stopRequested;
      await projector.stop();
      logger.info('stopped');
      return 0;
    } finally {
      await stores.close();
    }
  } finally {
    untrap();
  }
};

export const registerProjectCommand = (program: Command): void => {
  program
    .command('project')
    .description('run only the projector: keep the read models caught up with the event store')
    .action(async () => {
      process.exitCode = await project();
    });
};
