/**
 * Sealing from the configuration: which signing key (the environment, a file, or, for the embedded
 * default only, one generated and kept in the data directory), and the sealer's settings. Used by
 * `calltrail serve`, `calltrail seal` and the public-key export.
 */
import { readFile } from 'node:fs/promises';
import type pg from 'pg';
import { sealedStreamPrefixes } from '../archive/streams.ts';
import type { Config } from '../config.ts';
import type { EventStore } from '../event-store/event-store.ts';
import type { Logger } from '../logger.ts';
import { startSealer, type RunningSealer, type SealerOptions } from './sealer.ts';
import { loadOrCreateSigningKey, parseSigningKey, type SigningKey } from './signing-key.ts';

export interface KeySource {
  readonly key: SigningKey;
  /** For the log: where the key came from (never the key). */
  readonly source: string;
  readonly created: boolean;
}

/**
 * The signing key, or undefined when none is configured and this is not the embedded default (then
 * nothing is sealed, and serve says so). Throws `SigningKeyError` for a key that is not Ed25519 PEM.
 */
export const resolveSigningKey = async (
  config: Config,
  embeddedDefault: boolean,
): Promise<KeySource | undefined> => {
  const sealing = config.sealing;
  if (sealing.key !== undefined) {
    return {
      key: parseSigningKey(sealing.key, 'CALLTRAIL_SEALING_KEY'),
      source: 'CALLTRAIL_SEALING_KEY',
      created: false,
    };
  }
  if (sealing.keyFile !== undefined) {
    const pem = await readFile(sealing.keyFile, 'utf8');
    return { key: parseSigningKey(pem, sealing.keyFile), source: sealing.keyFile, created: false };
  }
  if (!embeddedDefault) return undefined;
  const { key, created, file } = await loadOrCreateSigningKey(config.dataDir);
  return { key, source: file, created };
};

export const sealerOptionsFrom = (config: Config): SealerOptions => {
  const sealing = config.sealing;
  return {
    streamPrefixes: sealedStreamPrefixes,
    maxEvents: sealing.maxEvents,
    maxSeconds: sealing.maxSeconds,
    digestDirectory: sealing.digestDirectory,
    standbyPollMs: 2_000,
    retryInitialMs: 250,
    retryMaxMs: 30_000,
  };
};

export const startConfiguredSealer = (
  config: Config,
  dependencies: { eventStore: EventStore; pool: pg.Pool; logger: Logger; key: SigningKey },
): RunningSealer => startSealer({ ...dependencies, clock: () => new Date() }, sealerOptionsFrom(config));

/**
 * Starts the sealer when a key is configured (or is the embedded default's), printing the public key
 * a verifier needs; without a key, says that nothing is sealed and returns undefined.
 */
export const startSealing = async (
  config: Config,
  dependencies: { eventStore: EventStore; pool: pg.Pool; logger: Logger; embeddedDefault: boolean },
  print: (text: string) => void,
): Promise<RunningSealer | undefined> => {
  const source = await resolveSigningKey(config, dependencies.embeddedDefault);
  if (source === undefined) {
    dependencies.logger.warn(
      'no sealing key (CALLTRAIL_SEALING_KEY or CALLTRAIL_SEALING_KEY_FILE): the archive is not sealed',
    );
    return undefined;
  }
  dependencies.logger.info(
    { keyId: source.key.keyId, keySource: source.source, generated: source.created },
    'sealing the archive',
  );
  print(
    `Sealing key ${source.key.keyId}; verify with this public key (also: calltrail seal --public-key):\n` +
      source.key.publicKeyPem,
  );
  return startConfiguredSealer(config, { ...dependencies, key: source.key });
};
