/**
 * The running server process: started detached (its own process group, so a terminal's Ctrl-C
 * reaches calltrail only, and calltrail stops the server last, after in-flight requests are done
 * with it), ready once it says it accepts connections, stopped by fast shutdown with escalation.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Binaries, ServerUser } from './cluster.ts';
import { EmbeddedPostgresError } from './errors.ts';

const readyMessage = 'database system is ready to accept connections';
export const startTimeoutMs = 120_000;
const stopTimeoutMs = 30_000;

export interface LaunchOptions {
  /** Server output, line by line. */
  readonly onLog?: (line: string) => void;
  /** The server stopped without `stop()` being called (crash, killed by someone else). */
  readonly onUnexpectedExit?: (reason: string) => void;
}

export interface RunningServer {
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

/** Starts the server and resolves once it accepts connections; rejects with its last words if not. */
export const launch = (
  binaries: Binaries,
  clusterDir: string,
  port: number,
  user: ServerUser | undefined,
  options: LaunchOptions,
): Promise<RunningServer> =>
  new Promise((resolve, reject) => {
    const log = options.onLog ?? (() => {});
    // Detached: its own process group, so a terminal's Ctrl-C reaches calltrail only, and calltrail
    // stops the server last, after in-flight requests are done with it.
    const child = spawn(
      binaries.postgres,
      [
        '-D',
        clusterDir,
        '-p',
        String(port),
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'unix_socket_directories=',
        '-c',
        'max_connections=200',
      ],
      {
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, LC_ALL: 'C' },
        ...(user ?? {}),
      },
    );
    const recent: string[] = [];
    let ready = false;
    let stopping = false;
    const onLine = (line: string) => {
      if (!line.trim()) return;
      log(line);
      recent.push(line);
      if (recent.length > 20) recent.shift();
      if (!ready && line.includes(readyMessage)) {
        ready = true;
        clearTimeout(startTimer);
        resolve(server);
      }
    };
    // Output arrives in chunks that may split a line; only whole lines are looked at.
    for (const stream of [child.stdout, child.stderr]) {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const lines = (partial + chunk).split('\n');
        partial = lines.pop() ?? '';
        lines.forEach(onLine);
      });
      stream.on('end', () => onLine(partial));
    }

    const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
    const hasExited = () => child.exitCode !== null || child.signalCode !== null;
    // Last resort when calltrail exits without stopping it (a fatal error): ask for a fast shutdown.
    const stopOnExit = () => {
      if (!hasExited()) child.kill('SIGINT');
    };
    process.on('exit', stopOnExit);

    const lastWords = () =>
      recent
        .filter((line) => /FATAL|PANIC|ERROR|could not/.test(line))
        .slice(-3)
        .join(' ') || recent.slice(-2).join(' ');

    child.once('error', (error) => {
      process.off('exit', stopOnExit);
      clearTimeout(startTimer);
      reject(new EmbeddedPostgresError(`could not run PostgreSQL: ${error.message}`, { cause: error }));
    });
    child.once('exit', (code, signal) => {
      process.off('exit', stopOnExit);
      const how = signal ?? `exit code ${code}`;
      if (!ready) {
        clearTimeout(startTimer);
        reject(new EmbeddedPostgresError(`PostgreSQL did not start (${how}): ${lastWords()}`));
      } else if (!stopping) {
        options.onUnexpectedExit?.(`PostgreSQL stopped unexpectedly (${how}): ${lastWords()}`);
      }
    });
    const startTimer = setTimeout(() => {
      child.kill('SIGQUIT');
      reject(
        new EmbeddedPostgresError(
          `PostgreSQL did not start within ${startTimeoutMs / 1000} s: ${lastWords()}`,
        ),
      );
    }, startTimeoutMs);

    const server: RunningServer = {
      child,
      stop: async () => {
        stopping = true;
        if (hasExited()) return;
        // Fast shutdown: rolls back open transactions, checkpoints, exits. If it hangs, immediate
        // shutdown (crash recovery on next start, still no committed data lost), then kill.
        for (const [signal, graceMs] of [
          ['SIGINT', stopTimeoutMs],
          ['SIGQUIT', 5_000],
          ['SIGKILL', 5_000],
        ] as const) {
          child.kill(signal);
          let timer: NodeJS.Timeout | undefined;
          const stopped = await Promise.race([
            exited.then(() => true),
            new Promise<boolean>((resolve) => {
              timer = setTimeout(() => resolve(false), graceMs);
            }),
          ]);
          clearTimeout(timer);
          if (stopped) return;
        }
        throw new EmbeddedPostgresError(`PostgreSQL (pid ${child.pid}) did not stop`);
      },
    };
  });
