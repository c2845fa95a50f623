/**
 * `calltrail rebuild`.
 */
import type { Command } from 'commander';

export const registerRebuildCommand = (_program: Command): void => {};
