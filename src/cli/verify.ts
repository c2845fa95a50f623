/**
 * `calltrail verify`: checks the archive against its digests and the public key(s) given, and says
 * exactly what is wrong where. Exit status 0 only when everything holds; 1 when something does not;
 * 2 when it could not verify at all (bad options, unreadable key, store unreachable).
 *
 * `--offline FILE` checks a replay JSON lines file or an evidence bundle (and a manifest beside it)
 * with no database and no configuration: only the public key, digest files and the file itself.
 */
import { access, readFile } from 'node:fs/promises';
import { Presets, SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { parseTimeRange } from '../audit/parameters.ts';
import { callStreamName, sealedStreamPrefixes } from '../archive/streams.ts';
import { HttpProblem } from '../http/problem.ts';
import { readDigestFiles } from '../sealing/digest-files.ts';
import { readDigestEvents } from '../sealing/digest-stream.ts';
import { manifestFileName } from '../sealing/manifest.ts';
import { OfflineInputError, verifyOffline, type OfflineReport } from '../sealing/offline-verify.ts';
import { parsePublicKeyText, type PublicKey } from '../sealing/signing-key.ts';
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
  readonly offline?: boolean;
  readonly webhookSecret?: string;
  readonly manifest?: string;
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

const rawKeyPattern = /^[0-9a-fA-F]{64}$/;

const readPublicKeys = async (files: readonly string[]): Promise<Map<string, PublicKey>> => {
  if (files.length === 0)
    throw new UsageError('--public-key: give the sealing public key (PEM) to verify against');
  const keys = new Map<string, PublicKey>();
  for (const file of files) {
    let text: string;
    if (rawKeyPattern.test(file)) text = file;
    else {
      try {
        text = await readFile(file, 'utf8');
      } catch (error) {
        throw new UsageError(`--public-key: cannot read ${file}: ${oneLine(error)}`);
      }
    }
    try {
      const key = parsePublicKeyText(text, rawKeyPattern.test(file) ? 'the hex key' : file);
      keys.set(key.keyId, key);
    } catch (error) {
      throw new UsageError(`--public-key: ${oneLine(error)}`);
    }
  }
  return keys;
};

export const formatReport = (report: VerifyReport | OfflineReport): string => {
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
    `${report.findings.length} problem(s)` +
    ('webhookSignatures' in report && report.webhookSignatures !== undefined
      ? `; Flireo signatures: ${report.webhookSignatures.valid}/${report.webhookSignatures.checked} valid, ` +
        `${report.webhookSignatures.notSigned} events delivered unsigned`
      : '');
  return [...lines, summary].join('\n') + '\n';
};

const digestFiles = (directory: string): AsyncIterable<DigestEntry> =>
  (async function* () {
    for await (const entry of readDigestFiles(directory)) {
      yield { where: entry.file, type: 'archive-digest', data: entry.data };
    }
  })();

const exists = async (file: string): Promise<boolean> =>
  access(file).then(
    () => true,
    () => false,
  );

/** `--offline FILE`: no configuration, no store; exit 0 only when everything in the file holds. */
export const runOfflineVerify = async (
  file: string | undefined,
  options: VerifyOptions,
  output: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream },
): Promise<number> => {
  let keys: Map<string, PublicKey>;
  let manifest: { where: string; data: unknown } | undefined;
  try {
    if (file === undefined)
      throw new UsageError('--offline: give the replay file or evidence bundle to verify');
    if (options.call !== undefined || options.from !== undefined || options.to !== undefined) {
      throw new UsageError('--offline: the file is the scope; --call, --from and --to do not apply');
    }
    if (!(await exists(file))) throw new UsageError(`--offline: cannot read ${file}`);
    if (options.webhookSecret === '') throw new UsageError('--webhook-secret: must not be empty');
    keys = await readPublicKeys(options.publicKey);
    const manifestFile = options.manifest ?? manifestFileName(file);
    if (options.manifest !== undefined || (await exists(manifestFile))) {
      let data: unknown;
      try {
        data = JSON.parse(await readFile(manifestFile, 'utf8'));
      } catch (error) {
        if (options.manifest !== undefined && !(await exists(manifestFile)))
          throw new UsageError(`--manifest: cannot read ${manifestFile}: ${oneLine(error)}`);
        data = undefined;
      }
      manifest = { where: manifestFile, data };
    }
  } catch (error) {
    if (error instanceof UsageError) {
      output.stderr.write(`error: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  try {
    const report = await verifyOffline({
      file,
      keys,
      ...(options.digests === undefined ? {} : { digests: digestFiles(options.digests) }),
      ...(manifest === undefined ? {} : { manifest }),
      ...(options.webhookSecret === undefined ? {} : { webhookSecret: options.webhookSecret }),
    });
    output.stdout.write(
      options.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report),
    );
    return report.ok ? 0 : 1;
  } catch (error) {
    output.stderr.write(
      error instanceof OfflineInputError
        ? `error: ${error.message}\n`
        : `calltrail: could not verify: ${oneLine(error)}\n`,
    );
    return 2;
  }
};

export const registerVerifyCommand = (program: Command): void => {
  program
    .command('verify')
    .description('verify the archive against its signed digests: every event present, unchanged, in order')
    .argument('[file]', 'with --offline: a replay JSON lines file or an evidence bundle')
    .option(
      '--public-key <file|hex>',
      'the sealing public key: a PEM file (calltrail seal --public-key prints it) or the raw key in hex; ' +
        'repeat for several (not variadic, so it never takes FILE for a key)',
      (value: string, previous: string[]) => [...previous, value],
      [] as string[],
    )
    .option('--offline', 'verify FILE (replay file or evidence bundle) without a database')
    .option(
      '--webhook-secret <secret>',
      "with --offline: also re-check Flireo's signatures of signed deliveries",
    )
    .option(
      '--manifest <file>',
      'with --offline: the signed manifest of FILE (default: FILE.manifest.json if present)',
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
    .action(async (file: string | undefined, options: VerifyOptions, command: Command) => {
      if (options.offline === true) {
        process.exitCode = await runOfflineVerify(file, options, process);
        return;
      }
      if (file !== undefined) command.error('error: a FILE is verified with --offline', { exitCode: 2 });
      if (options.webhookSecret !== undefined || options.manifest !== undefined)
        command.error('error: --webhook-secret and --manifest: only with --offline', { exitCode: 2 });
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
          // `+`: digests are still being read, so the total is a lower bound (a large archive's).
          format: 'verify |{bar}| {value}/{total}{more} events | {percentage}% | ETA {eta_formatted}',
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
            : digestFiles(options.digests);
        const report = await verifyArchive(eventStore, {
          digests,
          keys,
          scope,
          streamPrefixes: sealedStreamPrefixes,
          unsealedGraceMs: graceSeconds * 1000,
          now: new Date(),
          checkStreams: eventStore.kind === 'eventstoredb',
          onProgress: (checked, total, allDigestsRead) => {
            if (!showProgress) return;
            const more = allDigestsRead ? '' : '+';
            if (!barStarted) {
              bar.start(total, 0, { more });
              barStarted = true;
            }
            bar.setTotal(total);
            bar.update(checked, { more });
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
