/**
 * `calltrail forward`: runs only the forwarder, delivering archived events to the configured
 * destinations until SIGINT or SIGTERM (then it lets the attempts in flight finish; a second signal
 * exits at once). Several may run at once, and next to `calltrail serve`: one forwards, the others
 * stand by to take over.
 */
import type { Command } from 'commander';
import { startForwarding } from '../forwarding/forwarding-setup.ts';
import { createLogger } from '../logger.ts';
import { createMetrics } from '../metrics.ts';
import { openStores } from '../stores/open.ts';
import { reportConnectedRole } from '../stores/runtime-role.ts';
import { trapShutdownSignals } from '../server.ts';
import { loadConfigOrReport, oneLine } from './command-setup.ts';

/** Runs until a shutdown signal; resolves with the exit code. */
export const forward = async (): Promise<number> => {
  const config = loadConfigOrReport();
  if (config === undefined) return 1;
  const logger = createLogger({ level: config.logLevel });
  let resolveStop: () => void = () => {};
  const stopRequested = new Promise<void>((resolve) => {
    resolveStop = resolve;
  });
  const untrap = trapShutdownSignals(
    (signal) => {
      logger.info({ signal }, 'stopping the forwarder after the attempts in flight');
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
      let forwarder;
      try {
        forwarder = startForwarding(stores.config, {
          eventStore: stores.eventStore,
          pool: stores.database.pool,
          logger: logger.child({ component: 'forwarder' }),
          metrics: createMetrics({ collectProcessMetrics: true }),
        });
      } catch (error) {
        process.stderr.write(`calltrail: ${oneLine(error)}\n`);
        return 1;
      }
      if (forwarder === undefined) {
        process.stderr.write(
          'calltrail: nowhere to forward to: set CALLTRAIL_FORWARD_DESTINATIONS (and CALLTRAIL_FORWARD_SECRET)\n',
        );
        return 1;
      }
      logger.info({ eventStore: stores.locations.eventStore }, 'forwarding');
      await stopRequested;
      await forwarder.stop();
      logger.info('stopped');
      return 0;
    } finally {
      await stores.close();
    }
  } finally {
    untrap();
  }
};

export const registerForwardCommand = (program: Command): void => {
  program
    .command('forward')
    .description('run only the forwarder: deliver archived events to the configured destinations')
    .action(async () => {
      process.exitCode = await forward();
    });
};
