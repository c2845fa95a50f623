/**
 * `calltrail seal`: runs only the sealer until SIGINT or SIGTERM (several may run: one seals, the
 * others stand by). `--public-key` prints the public key verifiers need; `--export-digests DIR`
 * writes every digest of the digest stream out as files.
 */
import type { Command } from 'commander';
import { createLogger } from '../logger.ts';
import { openStores } from '../stores/open.ts';
import { planStores } from '../stores/plan.ts';
import { writeDigestFile } from '../sealing/digest-files.ts';
import { readDigestEvents } from '../sealing/digest-stream.ts';
import { isDigest } from '../sealing/digest.ts';
import { resolveSigningKey, startSealing } from '../sealing/sealing-setup.ts';
import { loadConfigOrReport, oneLine } from './command-setup.ts';
import { runWorkerCommand } from './worker-command.ts';

const printPublicKey = async (): Promise<number> => {
  const config = loadConfigOrReport();
  if (config === undefined) return 1;
  try {
    const source = await resolveSigningKey(config, planStores(config).embeddedDefault);
    if (source === undefined) {
      process.stderr.write(
        'calltrail: no sealing key is configured (CALLTRAIL_SEALING_KEY or CALLTRAIL_SEALING_KEY_FILE)\n',
      );
      return 1;
    }
    process.stdout.write(source.key.publicKeyPem);
    return 0;
  } catch (error) {
    process.stderr.write(`calltrail: ${oneLine(error)}\n`);
    return 1;
  }
};

const exportDigests = async (directory: string): Promise<number> => {
  const config = loadConfigOrReport();
  if (config === undefined) return 1;
  const logger = createLogger({ level: config.logLevel });
  let stores;
  try {
    stores = await openStores(config, logger);
  } catch (error) {
    process.stderr.write(`calltrail: could not open the stores: ${oneLine(error)}\n`);
    return 1;
  }
  try {
    let written = 0;
    for await (const entry of readDigestEvents(stores.eventStore)) {
      if (!isDigest(entry.data)) {
        process.stderr.write(
          `calltrail: digest stream revision ${entry.revision} is not a digest; skipped\n`,
        );
        continue;
      }
      await writeDigestFile(directory, entry.data);
      written += 1;
    }
    process.stderr.write(`wrote ${written} digest files to ${directory}\n`);
    return 0;
  } finally {
    await stores.close();
  }
};

const runSealer = (): Promise<number> =>
  runWorkerCommand({
    name: 'sealer',
    inFlight: 'the digest in flight',
    start: (stores, logger, config) =>
      startSealing(
        stores.config,
        {
          eventStore: stores.eventStore,
          pool: stores.database.pool,
          logger,
          embeddedDefault: planStores(config).embeddedDefault,
        },
        (text) => process.stderr.write(text),
      ),
  });

export const registerSealCommand = (program: Command): void => {
  program
    .command('seal')
    .description('run only the sealer: append signed digests over the archive as it grows')
    .option('--public-key', 'print the sealing public key (PEM) and exit')
    .option('--export-digests <dir>', 'write every digest out as a file in this directory and exit')
    .action(async (options: { publicKey?: boolean; exportDigests?: string }) => {
      process.exitCode =
        options.publicKey === true
          ? await printPublicKey()
          : options.exportDigests !== undefined
            ? await exportDigests(options.exportDigests)
            : await runSealer();
    });
};
