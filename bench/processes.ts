/**
 * Starting and talking to the measured processes (`child.ts`): one per role, compiled like calltrail's
 * production build (see `compiled.ts`), optionally with `--cpu-prof` so a missed target can be explained.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { compiledChild } from './compiled.ts';
import type { RelayFloorKind } from './relay-floor.ts';

export type ChildSpec =
  | {
      readonly role: 'app';
      readonly eventStoreUrl: string;
      readonly databaseUrl: string;
      readonly logLevel: string;
      readonly webhookSecret: string;
      readonly apiToken: string;
      /** With an outage journal in this directory, as `calltrail serve` runs. */
      readonly journalDir?: string;
      /** In relay mode, with this as `CALLTRAIL_RELAY_URL`. */
      readonly relayUrl?: string;
      /**
       * With a sealer in this process, as `calltrail serve` runs one, sealing at least this often;
       * it starts paused (commands `resume`, `pause`, `catch-up`).
       */
      readonly sealer?: { readonly maxSeconds: number };
    }
  | { readonly role: 'noop'; readonly logLevel: string }
  /** The customer's handler relay mode answers through (`tool-handler.ts`). */
  | { readonly role: 'tool-handler' }
  /** A bare relay in front of that handler, the floor under relay mode (`relay-floor.ts`). */
  | {
      readonly role: 'relay-floor';
      readonly kind: RelayFloorKind;
      readonly handlerUrl: string;
      readonly databaseUrl: string;
    }
  /** The customer's server forwarding delivers to (`event-receiver.ts`). */
  | { readonly role: 'event-receiver' }
  | {
      readonly role: 'projector';
      readonly eventStoreUrl: string;
      readonly databaseUrl: string;
      readonly logLevel: string;
    }
  | { readonly role: 'raw-copy'; readonly databaseUrl: string }
  | {
      readonly role: 'forwarder';
      readonly eventStoreUrl: string;
      readonly databaseUrl: string;
      readonly logLevel: string;
      /** Where every event goes. */
      readonly destinationUrl: string;
      /** Forward the whole archive (a backlog) rather than what is archived from now on. */
      readonly fromStart: boolean;
    }
  | {
      readonly role: 'sealer';
      readonly eventStoreUrl: string;
      readonly logLevel: string;
      /** Seal at least this often, so `catch-up` can wait for the archive's head to be sealed. */
      readonly maxSeconds: number;
    };

export type ChildCommand = { readonly id: number } & (
  | { readonly command: 'memory' }
  | { readonly command: 'reset-peak' }
  | { readonly command: 'live-heap' }
  | { readonly command: 'catch-up' }
  /** A sealer (its role, or an app with one): stop sealing, the process staying / start again and take the lead. */
  | { readonly command: 'pause' }
  | { readonly command: 'resume' }
  | { readonly command: 'copy'; readonly sql: string }
  | { readonly command: 'requests' }
  | { readonly command: 'arrivals' }
  | { readonly command: 'exit' }
);

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type ChildRequest = DistributiveOmit<ChildCommand, 'id'>;

export type ChildReply =
  | { readonly kind: 'ready'; readonly port: number }
  | { readonly kind: 'failed'; readonly error: string }
  | { readonly kind: 'reply'; readonly id: number; readonly ok: true; readonly result: unknown }
  | { readonly kind: 'reply'; readonly id: number; readonly ok: false; readonly error: string };

export interface MemoryReport {
  readonly rss: number;
  readonly peakRss: number;
  readonly peakSource: 'VmHWM' | 'sampled';
}

/** The process's memory right after a full garbage collection: what it really keeps. */
export interface LiveHeapReport {
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly rss: number;
}

export interface MeasuredProcess {
  readonly pid: number;
  /** The port it listens on (HTTP roles). */
  readonly port: number;
  request<T>(command: ChildRequest): Promise<T>;
  /** Asks it to exit cleanly (writing its CPU profile, if any); kills it if it does not. */
  stop(): Promise<void>;
}

export interface ProcessOptions {
  /** Where `--cpu-prof` writes profiles; no profiling when undefined. */
  readonly profileDir: string | undefined;
  /** Node or V8 options for the measured processes (a trade-off to compare, such as `--max-semi-space-size`). */
  readonly nodeFlags: readonly string[];
}

/** Numbers the processes' profile directories. */
let profileCount = 0;

const startTimeoutMs = 60_000;

export const startMeasuredProcess = async (
  spec: ChildSpec,
  options: ProcessOptions,
): Promise<MeasuredProcess> => {
  const execArgv = [...options.nodeFlags];
  if (options.profileDir !== undefined) {
    // A directory per process: Node names the files by pid and thread.
    const directory = path.join(options.profileDir, `${spec.role}-${(profileCount += 1)}`);
    execArgv.push('--cpu-prof', `--cpu-prof-dir=${directory}`);
  }
  // stdout (the app's request log) is discarded rather than piped: reading it would cost the
  // benchmark process CPU the load generator needs.
  const child: ChildProcess = fork(compiledChild, [JSON.stringify(spec)], {
    execArgv,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  let nextId = 1;
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = true;
      for (const waiter of pending.values()) {
        waiter.reject(new Error(`${spec.role} process exited (${signal ?? code}) before answering`));
      }
      pending.clear();
      resolve();
    }),
  );

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${spec.role} process did not start in time`)),
      startTimeoutMs,
    );
    child.on('message', (message: ChildReply) => {
      if (message.kind === 'ready') {
        clearTimeout(timer);
        resolve(message.port);
      } else if (message.kind === 'failed') {
        clearTimeout(timer);
        reject(new Error(`${spec.role} process failed to start: ${message.error}`));
      } else {
        const waiter = pending.get(message.id);
        pending.delete(message.id);
        if (message.ok) waiter?.resolve(message.result);
        else waiter?.reject(new Error(`${spec.role} process: ${message.error}`));
      }
    });
    void exit.then(() => {
      clearTimeout(timer);
      reject(new Error(`${spec.role} process exited during start-up`));
    });
  });

  const request = <T>(command: ChildRequest): Promise<T> =>
    exited
      ? Promise.reject(new Error(`${spec.role} process has exited`))
      : new Promise<T>((resolve, reject) => {
          const id = nextId++;
          pending.set(id, { resolve: (value) => resolve(value as T), reject });
          child.send({ ...command, id });
        });

  return {
    pid: child.pid ?? 0,
    port,
    request,
    stop: async () => {
      if (exited) return;
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      try {
        await request({ command: 'exit' }).catch(() => {});
        await exit;
      } finally {
        clearTimeout(killer);
      }
    },
  };
};
