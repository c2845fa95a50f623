/**
 * `calltrail export`.
 */
import type { Command } from 'commander';

export const registerExportCommand = (_program: Command): void => {};
