/**
 * What `calltrail project`, `seal` and `forward` share: run one background worker (a subscriber with
 * its own checkpoint, one active per database, the others standing by) on its own until SIGINT or
 * SIGTERM. The first signal lets the work in flight finish; a second exits at once.
 */
import type { Config } from '../config.ts';
import { createLogger, type Logger } from '../logger.ts';
import { openStores, type Stores } from '../stores/open.ts';
import { reportConnectedRole } from '../stores/runtime-role.ts';
import { trapShutdownSignals } from '../server.ts';
import { loadConfigOrReport, oneLine } from './command-setup.ts';

export interface Worker {
  stop(): Promise<void>;
}

export interface WorkerCommand {
  /** The worker, as logs name it: `projector`, `sealer`, `forwarder`. */
  readonly name: string;
  /** The work in flight a first signal waits for: `the batch in flight`. */
  readonly inFlight: string;
  /** Starts the worker; undefined once the reason it cannot run has been printed. Throws to say why not. */
  start(stores: Stores, logger: Logger, config: Config): Promise<Worker | undefined>;
}

/** Runs until a shutdown signal; resolves with the exit code. */
export const runWorkerCommand = async (command: WorkerCommand): Promise<number> => {
  const config = loadConfigOrReport();
  if (config === undefined) return 1;
  const logger = createLogger({ level: config.logLevel });
  let resolveStop: () => void = () => {};
  const stopRequested = new Promise<void>((resolve) => {
    resolveStop = resolve;
  });
  const untrap = trapShutdownSignals(
    (signal) => {
      logger.info({ signal }, `stopping the ${command.name} after ${command.inFlight}`);
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
      let worker;
      try {
        worker = await command.start(stores, logger.child({ component: command.name }), config);
      } catch (error) {
        process.stderr.write(`calltrail: ${oneLine(error)}\n`);
        return 1;
      }
      if (worker === undefined) return 1;
      logger.info(
        { eventStore: stores.locations.eventStore, readModels: stores.locations.readModels },
        `${command.name} running`,
      );
      await stopRequested;
      await worker.stop();
      logger.info('stopped');
      return 0;
    } finally {
      await stores.close();
    }
  } finally {
    untrap();
  }
};
