/**
 * `calltrail deliveries ...`: the delivery log and its controls, as the audit API has them (same
 * modules, same queries): list, show one with its attempts, retry one, recover a destination's
 * failed deliveries since a time (with a progress bar), pause and resume a destination, and list
 * destinations with their backlog. Output is JSON lines on stdout; a bad option names itself.
 */
import { Presets, SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { parseDateTime, parseLimit, parseTimeRange } from '../audit/parameters.ts';
import { InvalidArgumentError } from '../errors.ts';
import {
  pauseDestination,
  resumeDestination,
  retryDelivery,
  retryFailedSince,
} from '../forwarding/controls.ts';
import {
  findDelivery,
  listDeliveries,
  listDestinations,
  type DeliveryStatus,
} from '../forwarding/delivery-log.ts';
import { configuredDestinationNames } from '../forwarding/destinations.ts';
import { openCommandStores } from './command-setup.ts';
import type { Stores } from '../stores/open.ts';
import type { Config } from '../config.ts';

const statuses: readonly DeliveryStatus[] = ['pending', 'delivered', 'failed', 'cancelled'];
const idPattern = /^[0-9]{1,18}$/;
const namePattern = /^[a-z0-9][a-z0-9_-]{0,62}$/;

const usage = (command: Command, message: string): never =>
  command.error(`error: ${message}`, { exitCode: 2 });

/** Checks options as the HTTP routes check their parameters, naming the option at fault. */
const checked = <T>(command: Command, parse: () => T): T => {
  try {
    return parse();
  } catch (error) {
    if (error instanceof InvalidArgumentError) return usage(command, error.message);
    throw error;
  }
};

const withStores = async (
  command: Command,
  run: (stores: Stores, config: Config) => Promise<void>,
): Promise<void> => {
  const { stores, logger, config } = await openCommandStores(command);
  try {
    await run(stores, config);
  } catch (error) {
    logger.error({ err: error }, 'deliveries command failed');
    process.exitCode = 1;
  } finally {
    await stores.close();
  }
};

const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

interface ListOptions {
  status?: string;
  destination?: string;
  call?: string;
  from?: string;
  to?: string;
  limit?: string;
  cursor?: string;
}

export const registerDeliveriesCommand = (program: Command): void => {
  const deliveries = program
    .command('deliveries')
    .description('the forwarding delivery log: list, show, retry, recover, pause and resume destinations');

  deliveries
    .command('list')
    .description('deliveries, newest first, one JSON object a line')
    .option('--status <status>', `only ${statuses.join(', ')}`)
    .option('--destination <name>', 'only this destination')
    .option('--call <id>', "only this call's")
    .option('--from <time>', 'recorded at or after (ISO 8601 with a zone)')
    .option('--to <time>', 'recorded before (exclusive)')
    .option('--limit <n>', 'at most this many (1 to 1000, default 100)')
    .option('--cursor <id>', 'only deliveries older than this delivery id')
    .action(async (options: ListOptions, command: Command) => {
      if (options.status !== undefined && !statuses.includes(options.status as DeliveryStatus)) {
        usage(command, `--status: must be one of ${statuses.join(', ')}`);
      }
      if (options.cursor !== undefined && !idPattern.test(options.cursor))
        usage(command, '--cursor: a delivery id');
      const range = checked(command, () => parseTimeRange(options, '--'));
      const limit = checked(command, () => parseLimit(options.limit, '--limit'));
      await withStores(command, async (stores) => {
        const rows = await listDeliveries(
          stores.database.pool,
          {
            status: options.status as DeliveryStatus | undefined,
            destination: options.destination,
            callId: options.call,
            ...range,
          },
          { limit, before: options.cursor },
        );
        for (const row of rows) print(row);
      });
    });

  deliveries
    .command('show <id>')
    .description('one delivery and every attempt made')
    .action(async (id: string, _options: unknown, command: Command) => {
      if (!idPattern.test(id)) usage(command, '<id>: a delivery id');
      await withStores(command, async (stores) => {
        const found = await findDelivery(stores.database.pool, id);
        if (found === undefined) {
          process.stderr.write(`no delivery ${id}\n`);
          process.exitCode = 1;
          return;
        }
        print(found);
      });
    });

  deliveries
    .command('retry <id>')
    .description('retry one delivery now (a fresh retry schedule)')
    .action(async (id: string, _options: unknown, command: Command) => {
      if (!idPattern.test(id)) usage(command, '<id>: a delivery id');
      await withStores(command, async (stores) => {
        const outcome = await retryDelivery(stores.database.pool, id, new Date());
        if (outcome !== 'retrying') process.exitCode = 1;
        process.stderr.write(
          outcome === 'retrying'
            ? `delivery ${id} will be retried\n`
            : outcome === 'not-found'
              ? `no delivery ${id}\n`
              : `delivery ${id} was delivered already\n`,
        );
      });
    });

  deliveries
    .command('recover')
    .description("retry a destination's failed deliveries recorded since a time")
    .requiredOption('--destination <name>', 'the destination')
    .requiredOption(
      '--since <time>',
      'failed deliveries recorded at or after this time (ISO 8601 with a zone)',
    )
    .action(async (options: { destination: string; since: string }, command: Command) => {
      if (!namePattern.test(options.destination)) usage(command, '--destination: not a destination name');
      const since = checked(command, () => parseDateTime(options.since, '--since'))!;
      await withStores(command, async (stores) => {
        const bar = new SingleBar(
          {
            format: 'recover |{bar}| {value}/{total} deliveries | {percentage}%',
            stream: process.stderr,
            hideCursor: true,
          },
          Presets.shades_classic,
        );
        let started = false;
        const retried = await retryFailedSince(stores.database.pool, options.destination, since, new Date(), {
          onProgress: (done, total) => {
            if (!started) {
              bar.start(total, done);
              started = true;
            } else {
              bar.setTotal(total);
              bar.update(done);
            }
          },
        });
        bar.stop();
        process.stderr.write(`${retried} failed deliveries to ${options.destination} will be retried\n`);
      });
    });

  for (const action of ['pause', 'resume'] as const) {
    deliveries
      .command(`${action} <destination>`)
      .description(
        action === 'pause'
          ? 'pause a destination: nothing is sent to it until it is resumed'
          : 'resume a destination (paused by an operator, or for failing)',
      )
      .action(async (name: string, _options: unknown, command: Command) => {
        if (!namePattern.test(name)) usage(command, '<destination>: not a destination name');
        await withStores(command, async (stores, config) => {
          const pool = stores.database.pool;
          const configured = configuredDestinationNames(
            config.forwarding.destinations,
            config.relay !== undefined,
          );
          const known = (await listDestinations(pool, configured)).some(
            (destination) => destination.name === name,
          );
          if (!known) {
            process.stderr.write(`no destination named ${name}\n`);
            process.exitCode = 1;
            return;
          }
          await (action === 'pause'
            ? pauseDestination(pool, name, new Date())
            : resumeDestination(pool, name));
          print((await listDestinations(pool, configured, name))[0]);
        });
      });
  }

  deliveries
    .command('destinations')
    .description('destinations with their state and backlog')
    .action(async (_options: unknown, command: Command) => {
      await withStores(command, async (stores, config) => {
        const configured = configuredDestinationNames(
          config.forwarding.destinations,
          config.relay !== undefined,
        );
        for (const destination of await listDestinations(stores.database.pool, configured))
          print(destination);
      });
    });
};
