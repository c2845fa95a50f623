/**
 * What every command needs before it can work: the validated configuration and, for the one-shot
 * commands (export, replay, rebuild), a logger on stderr (stdout is the command's own output) and the
 * stores. A failure to get any of them ends the command with a clear message, never a stack trace.
 */
import type { Command } from 'commander';
import pino from 'pino';
import { ConfigError, loadConfig, type Config } from '../config.ts';
import { createLogger, type Logger } from '../logger.ts';
import { openStores, type Stores } from '../stores/open.ts';

/** One line, whatever the error: start-up failures are read by people, not parsed. */
export const oneLine = (error: unknown): string =>
  (error instanceof Error ? error.message : String(error)).replace(/\s*\n\s*/g, '; ');

/** The configuration, or undefined once the reason it is invalid has been printed. */
export const loadConfigOrReport = (): Config | undefined => {
  try {
    return loadConfig(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`calltrail: ${error.message}\n`);
    return undefined;
  }
};

export const openCommandStores = async (
  command: Command,
): Promise<{ config: Config; logger: Logger; stores: Stores }> => {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) command.error(error.message, { exitCode: 1 });
    throw error;
  }
  const logger = createLogger({
    level: config.logLevel,
    destination: pino.destination({ dest: 2, sync: true }),
  });
  try {
    return { config, logger, stores: await openStores(config, logger) };
  } catch (error) {
    logger.error({ err: error }, 'could not open the stores');
    command.error(`error: ${error instanceof Error ? error.message : String(error)}`, { exitCode: 1 });
  }
};
