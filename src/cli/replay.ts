/**
 * `calltrail replay`: the archive read back in global order, the same reading as `GET /replay`.
 *
 * - `--call ID`, or a selection (`--from`/`--to` by reception time, `--prefix`, `--after`): archived
 *   events as JSON lines (the API's shape) on stdout or in `--out FILE`.
 * - `--to-url URL`: the raw requests re-posted, byte for byte with their original content type, to
 *   a customer's server, in global order at `--rate` per second, with a progress bar on stderr and
 *   one outcome line per event on stdout. Only Flireo's own events (call and assistant-request
 *   streams) unless `--include-quarantine`.
 *
 * However it stops (done, a persistent failure, Ctrl-C), it prints the position to pass as `--after`
 * to continue without repeating or missing an event.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { Presets, SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { archiveStreamPrefixes, quarantineStreamPrefix } from '../archive/streams.ts';
import {
  formatPosition,
  type EventStore,
  type GlobalPosition,
  type RecordedEvent,
} from '../event-store/event-store.ts';
import { callIdDescription, callIdPattern } from '../flireo/schemas.ts';
import { InvalidArgumentError } from '../errors.ts';
import { eventStreamPrefixes, parseStreamPrefix, readArchive, readCall } from '../audit/archive-reader.ts';
import { toJsonLine } from '../audit/archived-event-view.ts';
import { parsePositionParameter, parseTimeRange } from '../audit/parameters.ts';
import { redeliver, type DeliveryOutcome } from '../audit/redelivery.ts';
import { writeManifestFile } from '../sealing/manifest.ts';
import { resolveSigningKey } from '../sealing/sealing-setup.ts';
import type { SigningKey } from '../sealing/signing-key.ts';
import { planStores } from '../stores/plan.ts';
import { openCommandStores } from './command-setup.ts';

export interface ReplayOptions {
  readonly call?: string | undefined;
  readonly from?: string | undefined;
  readonly to?: string | undefined;
  readonly prefix?: string | undefined;
  readonly after?: string | undefined;
  readonly out?: string | undefined;
  readonly toUrl?: string | undefined;
  readonly rate?: string | undefined;
  readonly includeQuarantine?: boolean | undefined;
}

export interface ReplaySource {
  readonly call: string | undefined;
  readonly streamPrefixes: readonly string[];
  readonly after: GlobalPosition | undefined;
  readonly receivedFrom: Date | undefined;
  readonly receivedTo: Date | undefined;
}

export type ReplayRequest =
  | { readonly mode: 'lines'; readonly source: ReplaySource; readonly out: string | undefined }
  | {
      readonly mode: 'redeliver';
      readonly source: ReplaySource;
      readonly url: URL;
      readonly ratePerSecond: number;
    };

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const defaultRatePerSecond = 10;
const maxRatePerSecond = 1000;
const callId = new RegExp(callIdPattern);

const usage = <T>(parse: () => T): T => {
  try {
    return parse();
  } catch (error) {
    if (error instanceof InvalidArgumentError) throw new UsageError(error.message);
    throw error;
  }
};

/** Checks the options as the HTTP route checks its query; a bad one names the option. */
export const parseReplayOptions = (options: ReplayOptions): ReplayRequest => {
  const { from, to } = usage(() => parseTimeRange(options, '--'));
  const after = usage(() => parsePositionParameter(options.after, '--after'));
  if (options.call !== undefined && !callId.test(options.call)) {
    throw new UsageError(`--call: must be a call id: ${callIdDescription}`);
  }
  if (options.call !== undefined && options.prefix !== undefined) {
    throw new UsageError('--prefix: cannot be combined with --call');
  }
  if (options.toUrl !== undefined && options.out !== undefined) {
    throw new UsageError('--out: cannot be combined with --to-url (outcomes go to stdout)');
  }
  if (options.toUrl === undefined && (options.rate !== undefined || options.includeQuarantine)) {
    throw new UsageError(
      `--${options.rate !== undefined ? 'rate' : 'include-quarantine'}: only with --to-url`,
    );
  }
  const prefix =
    options.prefix === undefined ? undefined : usage(() => parseStreamPrefix(options.prefix!, '--prefix'));
  if (
    prefix?.startsWith(quarantineStreamPrefix) &&
    options.toUrl !== undefined &&
    !options.includeQuarantine
  ) {
    throw new UsageError('--prefix: quarantined requests are re-posted only with --include-quarantine');
  }
  const redeliveryPrefixes = options.includeQuarantine
    ? [...eventStreamPrefixes, quarantineStreamPrefix]
    : eventStreamPrefixes;
  const source: ReplaySource = {
    call: options.call,
    streamPrefixes:
      prefix !== undefined
        ? [prefix]
        : options.toUrl !== undefined
          ? redeliveryPrefixes
          : archiveStreamPrefixes,
    after,
    receivedFrom: from,
    receivedTo: to,
  };
  if (options.toUrl === undefined) return { mode: 'lines', source, out: options.out };
  let url: URL;
  try {
    url = new URL(options.toUrl);
  } catch {
    throw new UsageError('--to-url: must be an absolute http:// or https:// URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError('--to-url: must be an absolute http:// or https:// URL');
  }
  const ratePerSecond = options.rate === undefined ? defaultRatePerSecond : Number(options.rate);
  if (!Number.isFinite(ratePerSecond) || ratePerSecond <= 0 || ratePerSecond > maxRatePerSecond) {
    throw new UsageError(
      `--rate: must be a number of events per second, above 0 and at most ${maxRatePerSecond}`,
    );
  }
  return { mode: 'redeliver', source, url, ratePerSecond };
};

const selectEvents = (eventStore: EventStore, source: ReplaySource): AsyncGenerator<RecordedEvent> =>
  source.call !== undefined
    ? readCall(eventStore, source.call, source)
    : readArchive(eventStore, { ...source, streamPrefixes: source.streamPrefixes });

const write = async (stream: Writable, text: string): Promise<void> => {
  if (!stream.write(text)) await once(stream, 'drain');
};

export interface ReplayResult {
  readonly result: 'completed' | 'failed' | 'interrupted';
  /** Pass as `--after` to continue. */
  readonly resumeAfter: GlobalPosition | undefined;
  readonly events: number;
  /** Why it stopped early, when it failed. */
  readonly error?: string;
}

export interface ReplayDependencies {
  readonly eventStore: EventStore;
  /** JSON lines (or, when redelivering, outcome lines) go here unless `--out` names a file. */
  readonly stdout: Writable;
  /** The progress bar and the closing summary. */
  readonly stderr: NodeJS.WritableStream;
  readonly signal?: AbortSignal;
  /** With it, a completed `--out` file gets a signed manifest beside it (`FILE.manifest.json`). */
  readonly sealingKey?: SigningKey | undefined;
}

const writeLines = async (
  request: Extract<ReplayRequest, { mode: 'lines' }>,
  dependencies: ReplayDependencies,
): Promise<ReplayResult> => {
  const output = request.out === undefined ? dependencies.stdout : createWriteStream(request.out);
  let resumeAfter = request.source.after;
  let events = 0;
  let result: ReplayResult['result'] = 'completed';
  let error: string | undefined;
  try {
    for await (const event of selectEvents(dependencies.eventStore, request.source)) {
      if (dependencies.signal?.aborted) {
        result = 'interrupted';
        break;
      }
      await write(output, toJsonLine(event));
      resumeAfter = event.position;
      events += 1;
    }
  } catch (caught) {
    // Every line written so far is complete; the caller learns where to resume.
    result = 'failed';
    error = caught instanceof Error ? caught.message : String(caught);
  } finally {
    if (output !== dependencies.stdout) {
      output.end();
      await once(output, 'close');
    }
  }
  return { result, resumeAfter, events, ...(error === undefined ? {} : { error }) };
};

const countEvents = async (eventStore: EventStore, source: ReplaySource): Promise<number> => {
  let count = 0;
  for await (const _event of selectEvents(eventStore, source)) count += 1;
  return count;
};

const redeliverEvents = async (
  request: Extract<ReplayRequest, { mode: 'redeliver' }>,
  dependencies: ReplayDependencies,
): Promise<ReplayResult> => {
  const total = await countEvents(dependencies.eventStore, request.source);
  const bar = new SingleBar(
    {
      format: 'replay |{bar}| {value}/{total} events | {rate}/s | ETA {eta_formatted} | last {last}',
      stream: dependencies.stderr,
      hideCursor: true,
    },
    Presets.shades_classic,
  );
  const started = performance.now();
  bar.start(total, 0, { rate: '0.0', last: '-' });
  let done = 0;
  try {
    const report = await redeliver(
      selectEvents(dependencies.eventStore, request.source),
      { url: request.url, ratePerSecond: request.ratePerSecond },
      {
        after: request.source.after,
        ...(dependencies.signal ? { signal: dependencies.signal } : {}),
        onOutcome: (outcome: DeliveryOutcome) => {
          done += 1;
          if (done > total) bar.setTotal(done);
          bar.update(done, {
            rate: (done / Math.max(0.001, (performance.now() - started) / 1000)).toFixed(1),
            last: `${outcome.result}${outcome.status === null ? '' : ` ${outcome.status}`}`,
          });
          dependencies.stdout.write(`${JSON.stringify(outcome)}\n`);
        },
      },
    );
    bar.stop();
    dependencies.stderr.write(
      `replay ${report.result}: ${report.delivered} delivered, ${report.rejected} rejected, ${report.skipped} skipped` +
        (report.failure
          ? `; stopped at ${report.failure.position} (${report.failure.status ?? report.failure.error ?? 'no answer'} after ${report.failure.attempts} attempts)`
          : '') +
        '\n',
    );
    return {
      result: report.result,
      resumeAfter: report.resumeAfter,
      events: done,
      ...(report.readError === undefined ? {} : { error: report.readError }),
    };
  } finally {
    bar.stop();
  }
};

export const runReplay = async (
  request: ReplayRequest,
  dependencies: ReplayDependencies,
): Promise<ReplayResult> => {
  const outcome =
    request.mode === 'lines'
      ? await writeLines(request, dependencies)
      : await redeliverEvents(request, dependencies);
  if (
    request.mode === 'lines' &&
    request.out !== undefined &&
    outcome.result === 'completed' &&
    dependencies.sealingKey !== undefined
  ) {
    const { source } = request;
    const manifest = await writeManifestFile(
      request.out,
      {
        kind: 'replay',
        query: {
          call: source.call ?? null,
          prefixes: source.streamPrefixes.join(','),
          from: source.receivedFrom?.toISOString() ?? null,
          to: source.receivedTo?.toISOString() ?? null,
          after: source.after === undefined ? null : formatPosition(source.after),
        },
        count: outcome.events,
        lastPosition: outcome.resumeAfter,
      },
      { eventStore: dependencies.eventStore, key: dependencies.sealingKey, now: new Date() },
    );
    dependencies.stderr.write(`signed manifest: ${manifest}\n`);
  }
  if (outcome.error !== undefined) dependencies.stderr.write(`replay stopped: ${outcome.error}\n`);
  dependencies.stderr.write(
    outcome.resumeAfter === undefined
      ? 'nothing replayed; run again without --after to start from the beginning\n'
      : `resume with: --after ${formatPosition(outcome.resumeAfter)}\n`,
  );
  return outcome;
};

const exitCodes: Record<ReplayResult['result'], number> = { completed: 0, failed: 1, interrupted: 130 };

export const registerReplayCommand = (program: Command): void => {
  program
    .command('replay')
    .description('read archived events back in global order, as JSON lines or re-posted to a URL')
    .option('--call <id>', "one call's events")
    .option('--from <time>', 'events received at or after this time (ISO 8601 with a zone)')
    .option('--to <time>', 'events received before this time (exclusive)')
    .option('--prefix <prefix>', `a stream-name prefix within ${archiveStreamPrefixes.join(', ')}`)
    .option('--after <position>', 'resume after this global position ("<commit>/<prepare>", exclusive)')
    .option('--out <file>', 'write the JSON lines to this file instead of stdout')
    .option('--to-url <url>', 're-post the raw requests to this URL')
    .option('--rate <n>', `with --to-url: requests per second (default ${defaultRatePerSecond})`)
    .option('--include-quarantine', 'with --to-url: re-post quarantined requests too')
    .action(async (options: ReplayOptions, command: Command) => {
      let request: ReplayRequest;
      try {
        request = parseReplayOptions(options);
      } catch (error) {
        if (error instanceof UsageError) command.error(`error: ${error.message}`, { exitCode: 2 });
        throw error;
      }
      const { config, logger, stores } = await openCommandStores(command);
      const abort = new AbortController();
      const interrupt = () => {
        if (!abort.signal.aborted) {
          process.stderr.write('\nstopping after the request in flight (Ctrl-C again to stop at once)\n');
          abort.abort();
          return;
        }
        process.stderr.write('stopped at once: the last outcome line shows the position to resume after\n');
        process.exit(130);
      };
      process.on('SIGINT', interrupt);
      try {
        const sealingKey =
          request.mode === 'lines' && request.out !== undefined
            ? (await resolveSigningKey(config, planStores(config).embeddedDefault))?.key
            : undefined;
        const outcome = await runReplay(request, {
          eventStore: stores.eventStore,
          stdout: process.stdout,
          stderr: process.stderr,
          signal: abort.signal,
          sealingKey,
        });
        process.exitCode = exitCodes[outcome.result];
      } catch (error) {
        logger.error({ err: error }, 'replay failed');
        process.exitCode = 1;
      } finally {
        process.off('SIGINT', interrupt);
        await stores.close();
      }
    });
};
