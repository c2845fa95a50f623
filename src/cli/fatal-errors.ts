/**
 * The last line of defence: an exception nobody caught or a promise rejection nobody handled ends
 * the process with exit code 1 and one fatal log line saying what happened, never silently and never
 * as a bare stack trace. The embedded PostgreSQL, if this process started it, is asked to shut down
 * on the way out (its `exit` hook).
 */
import pino from 'pino';
import { createLogger, type Logger } from '../logger.ts';

/** Written synchronously to stderr, so the line is out before the process exits. */
const fatalLogger = (): Logger =>
  createLogger({ level: 'fatal', destination: pino.destination({ dest: 2, sync: true }) });

export const exitOnUncaughtErrors = (logger: Logger = fatalLogger()): void => {
  let exiting = false;
  const fail = (error: unknown, message: string) => {
    if (!exiting) {
      exiting = true;
      logger.fatal({ err: error }, message);
    }
    process.exit(1);
  };
  process.on('uncaughtException', (error) => fail(error, 'uncaught exception; exiting'));
  process.on('unhandledRejection', (reason) => fail(reason, 'unhandled promise rejection; exiting'));
};
