/**
 * `calltrail export evidence --call ID --out FILE`: one call's complete record as an evidence bundle
 * (raw events with Flireo's signature material, inclusion proofs, the digests they name, the public
 * key), signed with the sealing key, which `calltrail verify --offline` checks with no database.
 */
import { rename, rm, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { callStreamName } from '../archive/streams.ts';
import { readCall } from '../audit/archive-reader.ts';
import type { EventStore } from '../event-store/event-store.ts';
import { callIdDescription, callIdPattern } from '../flireo/schemas.ts';
import { buildEvidenceBundle } from '../sealing/evidence.ts';
import { resolveSigningKey } from '../sealing/sealing-setup.ts';
import type { SigningKey } from '../sealing/signing-key.ts';
import { planStores } from '../stores/plan.ts';
import { openCommandStores, oneLine } from './command-setup.ts';

const callId = new RegExp(callIdPattern);

export interface EvidenceExportResult {
  readonly events: number;
  readonly unsealed: number;
}

/** Writes the bundle to `out` (whole or not at all); resolves with what it holds. */
export const runEvidenceExport = async (
  request: { readonly callId: string; readonly out: string },
  dependencies: { readonly eventStore: EventStore; readonly key: SigningKey; readonly now: Date },
): Promise<EvidenceExportResult> => {
  const bundle = await buildEvidenceBundle(
    dependencies.eventStore,
    {
      callId: request.callId,
      streamName: callStreamName(request.callId),
      events: readCall(dependencies.eventStore, request.callId),
    },
    dependencies.key,
    dependencies.now,
  );
  const partial = `${request.out}.partial`;
  try {
    await writeFile(partial, `${JSON.stringify(bundle, null, 2)}\n`);
    await rename(partial, request.out);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
  return {
    events: bundle.events.length,
    unsealed: bundle.proofs.filter((proof) => proof.status !== 'sealed').length,
  };
};

export const registerEvidenceExportCommand = (exportCommand: Command): void => {
  exportCommand
    .command('evidence')
    .description(
      "write one call's complete, signed record (events, signature material, proofs, digests, public key) " +
        'for calltrail verify --offline',
    )
    .requiredOption('--call <id>', 'the call')
    .requiredOption('--out <file>', 'the evidence bundle to write (replaced when complete)')
    .action(async (options: { call: string; out: string }, command: Command) => {
      if (!callId.test(options.call)) {
        command.error(`error: --call: must be a call id: ${callIdDescription}`, { exitCode: 2 });
      }
      if (options.out === '') command.error('error: --out: must not be empty', { exitCode: 2 });
      const { config, logger, stores } = await openCommandStores(command);
      try {
        const source = await resolveSigningKey(config, planStores(config).embeddedDefault);
        if (source === undefined) {
          process.stderr.write(
            'calltrail: no sealing key (CALLTRAIL_SEALING_KEY or CALLTRAIL_SEALING_KEY_FILE): ' +
              'evidence bundles are signed with it\n',
          );
          process.exitCode = 1;
          return;
        }
        const result = await runEvidenceExport(
          { callId: options.call, out: options.out },
          { eventStore: stores.eventStore, key: source.key, now: new Date() },
        );
        if (result.events === 0) {
          await rm(options.out, { force: true });
          process.stderr.write(`calltrail: no archived events for call ${options.call}\n`);
          process.exitCode = 1;
          return;
        }
        process.stderr.write(
          `wrote ${result.events} events to ${options.out}` +
            (result.unsealed > 0
              ? `; ${result.unsealed} not sealed yet (verification fails for them: export again once sealed)\n`
              : ', all sealed\n'),
        );
      } catch (error) {
        logger.debug({ err: error }, 'evidence export failed');
        process.stderr.write(`calltrail: could not export the evidence: ${oneLine(error)}\n`);
        process.exitCode = 1;
      } finally {
        await stores.close();
      }
    });
};
