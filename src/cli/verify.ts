/**
 * `calltrail verify`: checks the archive against its digests and the public key(s) given, and says
 * exactly what is wrong where. Exit status 0 only when everything holds; 1 when something does not;
 * 2 when it could not verify at all (bad options, unreadable key, store unreachable).
 */
import { readFile } from 'node:fs/promises';
import { Presets, SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { parseTimeRange } from '../audit/parameters.ts';
import { archiveStreamPrefixes, callStreamName } from '../archive/streams.ts';
import { HttpProblem } from '../http/problem.ts';
import { readDigestFiles } from '../sealing/digest-files.ts';
import { readDigestEvents } from '../sealing/digest-stream.ts';
import { parsePublicKey, type PublicKey } from '../sealing/signing-key.ts';
import { verifyArchive, type DigestEntry, type VerifyReport, type VerifyScope } from '../sealing/verify.ts';
import { loadConfigOrReport, oneLine } from './command-setup.ts';
import { openStores } from '../stores/open.ts';
import { createLogger } from '../logger.ts';
import pino from 'pino';

interface VerifyOptions {
  readonly publicKey: string[];
  readonly digests?: string;
  readonly call?: string;
  readonly from?: string;
  readonly to?: string;
  readonly json?: boolean;
  readonly unsealedGraceSeconds?: string;
}

class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const parseVerifyScope = (options: VerifyOptions): VerifyScope => {
  const ranged = options.from !== undefined || options.to !== undefined;
  if (options.call !== undefined && ranged)
    throw new UsageError('--call: cannot be combined with --from/--to');
  if (options.call !== undefined) {
    if (options.call === '') throw new UsageError('--call: must not be empty');
    return { kind: 'stream', streamName: callStreamName(options.call) };
  }
  if (!ranged) return { kind: 'all' };
  if (options.from === undefined || options.to === undefined)
    throw new UsageError('--from and --to: give both');
  try {
    const { from, to } = parseTimeRange(options, '--');
    return { kind: 'range', from: from!, to: to! };
  } catch (error) {
    if (error instanceof HttpProblem) throw new UsageError(error.detail ?? error.message);
    throw error;
  }
};

const readPublicKeys = async (files: readonly string[]): Promise<Map<string, PublicKey>> => {
  if (files.length === 0)
    throw new UsageError('--public-key: give the sealing public key (PEM) to verify against');
  const keys = new Map<string, PublicKey>();
  for (const file of files) {
    let pem: string;
    try {
      pem = await readFile(file, 'utf8');
    } catch (error) {
      throw new UsageError(`--public-key: cannot read ${file}: ${oneLine(error)}`);
    }
    try {
      const key = parsePublicKey(pem, file);
      keys.set(key.keyId, key);
    } catch (error) {
      throw new UsageError(`--public-key: ${oneLine(error)}`);
    }
  }
  return keys;
};

export const formatReport = (report: VerifyReport): string => {
  const lines = report.findings.map((finding) => {
    const where = [
      finding.digest === undefined ? undefined : `digest ${finding.digest}`,
      finding.position === undefined ? undefined : `position ${finding.position}`,
      finding.stream === undefined
        ? undefined
        : `${finding.stream}${finding.revision === undefined ? '' : ` revision ${finding.revision}`}`,
    ].filter((part) => part !== undefined);
    return `${finding.kind.toUpperCase()}  ${where.join(', ')}: ${finding.detail}`;
  });
  const summary =
    `${report.ok ? 'OK' : 'FAILED'}: scope ${report.scope}; ${report.digests} digests; ` +
    `${report.eventsChecked} sealed events checked; ${report.unsealedEvents} not yet sealed; ` +
    `${report.findings.length} problem(s)`;
  return [...lines, summary].join('\n') + '\n';
};

export const registerVerifyCommand = (program: Command): void => {
  program
    .command('verify')
    .description('verify the archive against its signed digests: every event present, unchanged, in order')
    .option(
      '--public-key <file...>',
      'the sealing public key(s), PEM (calltrail seal --public-key prints it)',
      [],
    )
    .option('--digests <dir>', 'check against digest files in this directory instead of the digest stream')
    .option('--call <id>', 'verify one call')
    .option('--from <time>', 'verify the digests of events written from this time (ISO 8601 with a zone)')
    .option('--to <time>', '... to this time')
    .option(
      '--unsealed-grace-seconds <n>',
      'events unsealed for longer than this are a problem (default: 2 sealing periods + 60)',
    )
    .option('--json', 'print the report as JSON')
    .action(async (options: VerifyOptions, command: Command) => {
      const config = loadConfigOrReport();
      if (config === undefined) {
        process.exitCode = 2;
        return;
      }
      let scope: VerifyScope;
      let keys: Map<string, PublicKey>;
      let graceSeconds: number;
      try {
        scope = parseVerifyScope(options);
        keys = await readPublicKeys(options.publicKey);
        graceSeconds =
          options.unsealedGraceSeconds === undefined
            ? 2 * config.sealing.maxSeconds + 60
            : Number(options.unsealedGraceSeconds);
        if (!Number.isFinite(graceSeconds) || graceSeconds < 0) {
          throw new UsageError('--unsealed-grace-seconds: must be a number of seconds, 0 or more');
        }
      } catch (error) {
        if (error instanceof UsageError) command.error(`error: ${error.message}`, { exitCode: 2 });
        throw error;
      }
      const logger = createLogger({
        level: config.logLevel,
        destination: pino.destination({ dest: 2, sync: true }),
      });
      let stores;
      try {
        stores = await openStores(config, logger);
      } catch (error) {
        process.stderr.write(`calltrail: could not open the stores: ${oneLine(error)}\n`);
        process.exitCode = 2;
        return;
      }
      const showProgress = options.json !== true && process.stderr.isTTY;
      const bar = new SingleBar(
        {
          format: 'verify |{bar}| {value}/{total} events | {percentage}% | ETA {eta_formatted}',
          stream: process.stderr,
          hideCursor: true,
        },
        Presets.shades_classic,
      );
      let barStarted = false;
      try {
        const { eventStore } = stores;
        const digests: AsyncIterable<DigestEntry> =
          options.digests === undefined
            ? (async function* () {
                for await (const entry of readDigestEvents(eventStore)) {
                  yield {
                    where: `digest stream revision ${entry.revision}`,
                    type: entry.type,
                    data: entry.data,
                  };
                }
              })()
            : (async function* () {
                for await (const entry of readDigestFiles(options.digests!)) {
                  yield { where: entry.file, type: 'archive-digest', data: entry.data };
                }
              })();
        const report = await verifyArchive(eventStore, {
          digests,
          keys,
          scope,
          streamPrefixes: archiveStreamPrefixes,
          unsealedGraceMs: graceSeconds * 1000,
          now: new Date(),
          checkStreams: eventStore.kind === 'eventstoredb',
          onProgress: (checked, total) => {
            if (!showProgress) return;
            if (!barStarted) {
              bar.start(total, 0);
              barStarted = true;
            }
            bar.update(checked);
          },
        });
        if (barStarted) bar.stop();
        process.stdout.write(
          options.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report),
        );
        process.exitCode = report.ok ? 0 : 1;
      } catch (error) {
        if (barStarted) bar.stop();
        logger.debug({ err: error }, 'verification failed');
        process.stderr.write(`calltrail: could not verify: ${oneLine(error)}\n`);
        process.exitCode = 2;
      } finally {
        await stores.close();
      }
    });
};
