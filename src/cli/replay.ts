/**
 * `calltrail replay`.
 */
import type { Command } from 'commander';

export const registerReplayCommand = (_program: Command): void => {};
