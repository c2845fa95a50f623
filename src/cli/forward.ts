/**
 * `calltrail forward`: runs only the forwarder, delivering archived events to the configured
 * destinations until SIGINT or SIGTERM (then it lets the attempts in flight finish; a second signal
 * exits at once). Several may run at once, and next to `calltrail serve`: one forwards, the others
 * stand by to take over.
 */
import type { Command } from 'commander';
import { startForwarding } from '../forwarding/forwarding-setup.ts';
import { createMetrics } from '../metrics.ts';
import { runWorkerCommand } from './worker-command.ts';

/** Runs until a shutdown signal; resolves with the exit code. */
export const forward = (): Promise<number> =>
  runWorkerCommand({
    name: 'forwarder',
    inFlight: 'the attempts in flight',
    start: async (stores, logger) => {
      const forwarder = startForwarding(stores.config, {
        eventStore: stores.eventStore,
        pool: stores.database.pool,
        logger,
        metrics: createMetrics({ collectProcessMetrics: true }),
      });
      if (forwarder === undefined) {
        process.stderr.write(
          'calltrail: nowhere to forward to: set CALLTRAIL_FORWARD_DESTINATIONS (and CALLTRAIL_FORWARD_SECRET)\n',
        );
      }
      return forwarder;
    },
  });

export const registerForwardCommand = (program: Command): void => {
  program
    .command('forward')
    .description('run only the forwarder: deliver archived events to the configured destinations')
    .action(async () => {
      process.exitCode = await forward();
    });
};
