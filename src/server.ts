/**
 * The only place calltrail binds a port, and the process-level shutdown trigger. `calltrail serve`
 * builds the app and stores, then hands them here.
 */
import type { AddressInfo } from 'node:net';
import type { App } from './app.ts';

export interface Listening {
  /** The port actually bound (differs from the one asked for when that was 0). */
  readonly port: number;
  readonly address: string;
}

export class ListenError extends Error {
  override readonly name = 'ListenError';
}

/** Starts accepting connections; a port already in use becomes a clear `ListenError`. */
export const listen = async (app: App, options: { host: string; port: number }): Promise<Listening> => {
  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      throw new ListenError(`port ${options.port} on ${options.host} is already in use (CALLTRAIL_PORT)`, {
        cause: error,
      });
    }
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EACCES') {
      throw new ListenError(
        `cannot listen on ${options.host}:${options.port} (${code}; see CALLTRAIL_HOST)`,
        {
          cause: error,
        },
      );
    }
    throw error;
  }
  const { port, address } = app.server.address() as AddressInfo;
  return { port, address };
};

/**
 * Calls `onSignal` once, on the first SIGINT or SIGTERM; a second one means "now", and exits at
 * once with 128 + the signal number. Returns a function that removes the handlers.
 */
export const trapShutdownSignals = (
  onSignal: (signal: NodeJS.Signals) => void,
  onSecondSignal: (signal: NodeJS.Signals) => void,
): (() => void) => {
  let received = false;
  const handle = (signal: NodeJS.Signals) => {
    if (received) {
      onSecondSignal(signal);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    received = true;
    onSignal(signal);
  };
  process.on('SIGINT', handle);
  process.on('SIGTERM', handle);
  return () => {
    process.off('SIGINT', handle);
    process.off('SIGTERM', handle);
  };
};
