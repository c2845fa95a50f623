/**
 * `calltrail project`.
 */
import type { Command } from 'commander';

export const registerProjectCommand = (_program: Command): void => {};
