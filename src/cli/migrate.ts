/**
 * `calltrail migrate`: applies the event-store (when it is on PostgreSQL) and read-model migrations,
 * then exits. `serve` and the other commands apply them too when they open the stores; this is the
 * standalone step for deployments that migrate before rolling out.
 */
import type { Command } from 'commander';
import { createLogger } from '../logger.ts';
import { migrateStores } from '../stores/migrate.ts';
import { loadConfigOrReport, oneLine } from './command-setup.ts';

const describeApplied = (applied: readonly string[]): string =>
  applied.length === 0 ? 'up to date' : `applied ${applied.join(', ')}`;

const describeRuntimeRole = ({ name, created }: { name: string; created: boolean }): string =>
  created
    ? `runtime role: created ${name} without LOGIN and granted it what serve and project need; ` +
      `give it a login: ALTER ROLE ${name} LOGIN PASSWORD '…'\n`
    : `runtime role: granted ${name} what serve and project need\n`;

export const registerMigrateCommand = (program: Command): void => {
  program
    .command('migrate')
    .description('apply the event-store and read-model database migrations, then exit')
    .option(
      '--runtime-role <name>',
      'also create (if absent, without LOGIN) and grant the role serve and project should run as',
    )
    .action(async (options: { runtimeRole?: string }) => {
      const config = loadConfigOrReport();
      if (config === undefined) process.exit(1);
      const logger = createLogger({ level: config.logLevel });
      try {
        const report = await migrateStores(config, logger, { runtimeRole: options.runtimeRole });
        const eventStore =
          report.eventStore === undefined ? 'nothing to migrate' : describeApplied(report.eventStore);
        process.stdout.write(
          `event store: ${eventStore} (${report.locations.eventStore})\n` +
            `read models: ${describeApplied(report.readModels)} (${report.locations.readModels})\n` +
            (report.runtimeRole === undefined ? '' : describeRuntimeRole(report.runtimeRole)),
        );
      } catch (error) {
        logger.debug({ err: error }, 'migration failed');
        process.stderr.write(`calltrail: migration failed: ${oneLine(error)}\n`);
        process.exit(1);
      }
    });
};
