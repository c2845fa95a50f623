/**
 * `calltrail migrate`.
 */
import type { Command } from 'commander';

export const registerMigrateCommand = (_program: Command): void => {};
