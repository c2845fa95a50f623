/**
 * `calltrail serve`: ingest (and, by default, the projector) in one process.
 */
import type { Command } from 'commander';

export const registerServeCommand = (program: Command): void => {
  program
    .command('serve')
    .description('receive Flireo webhooks and serve the audit API')
    .action(() => {
      throw new Error('not yet wired');
    });
};
