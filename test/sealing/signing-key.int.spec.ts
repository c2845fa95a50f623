import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { digestHash, digestSignatureValid, sealEvents, signedBytes } from '../../src/sealing/digest.ts';
import {
  loadOrCreateSigningKey,
  parsePublicKey,
  parseSigningKey,
  signingKeyFileName,
  SigningKeyError,
} from '../../src/sealing/signing-key.ts';
import { resolveSigningKey } from '../../src/sealing/sealing-setup.ts';
import { recordedCallEvent, statusUpdate } from '../support/call-events.ts';

const directories: string[] = [];
const scratch = async () => {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'calltrail-key-'));
  directories.push(directory);
  return directory;
};

afterAll(async () => {
  for (const directory of directories) await rm(directory, { recursive: true, force: true });
});

describe('the sealing key', () => {
  it('is generated once in the data directory (mode 0600) and reused on the next start', async () => {
    const dataDir = await scratch();
    const first = await loadOrCreateSigningKey(dataDir);
    expect(first.created).toBe(true);
    expect((await stat(path.join(dataDir, signingKeyFileName))).mode & 0o777).toBe(0o600);
    const second = await loadOrCreateSigningKey(dataDir);
    expect(second).toMatchObject({ created: false });
    expect(second.key.keyId).toBe(first.key.keyId);
    expect(parsePublicKey(first.key.publicKeyPem, 'printed').keyId).toBe(first.key.keyId);
  });

  it('comes from CALLTRAIL_SEALING_KEY or CALLTRAIL_SEALING_KEY_FILE, and only the embedded default generates one', async () => {
    const dataDir = await scratch();
    const pem = (await loadOrCreateSigningKey(await scratch())).key.privateKey
      .export({ type: 'pkcs8', format: 'pem' })
      .toString();
    const fromEnv = await resolveSigningKey(
      loadConfig({ CALLTRAIL_SEALING_KEY: pem, CALLTRAIL_DATA_DIR: dataDir }),
      false,
    );
    expect(fromEnv?.source).toBe('CALLTRAIL_SEALING_KEY');
    expect(await resolveSigningKey(loadConfig({ CALLTRAIL_DATA_DIR: dataDir }), false)).toBeUndefined();
    const generated = await resolveSigningKey(loadConfig({ CALLTRAIL_DATA_DIR: dataDir }), true);
    expect(generated?.created).toBe(true);
    const fromFile = await resolveSigningKey(
      loadConfig({ CALLTRAIL_SEALING_KEY_FILE: path.join(dataDir, signingKeyFileName) }),
      false,
    );
    expect(fromFile?.key.keyId).toBe(generated?.key.keyId);
    expect(await readFile(path.join(dataDir, signingKeyFileName), 'utf8')).toContain('PRIVATE KEY');
  });

  it('refuses a key that is not Ed25519, and bad configuration names the variable without showing the key', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
    expect(() => parseSigningKey(rsa, 'CALLTRAIL_SEALING_KEY')).toThrow(SigningKeyError);
    expect(() => loadConfig({ CALLTRAIL_SEALING_KEY: 'not a key' })).toThrow(
      /CALLTRAIL_SEALING_KEY=\(hidden\)/,
    );
    expect(() => loadConfig({ CALLTRAIL_SEAL_EVERY_EVENTS: '0' })).toThrow(/CALLTRAIL_SEAL_EVERY_EVENTS/);
    expect(() => loadConfig({ CALLTRAIL_SEAL_EVERY_SECONDS: '0' })).toThrow(/CALLTRAIL_SEAL_EVERY_SECONDS/);
  });
});

describe('digests', () => {
  it('are signed over canonical JSON and chained; any change to a signed field breaks the signature', async () => {
    const { key } = await loadOrCreateSigningKey(await scratch());
    const keys = new Map([[key.keyId, key]]);
    const events = [0n, 1n, 2n].map((revision) =>
      recordedCallEvent(statusUpdate('digest-call', 'in-progress', '2026-03-01T10:00:00.000Z'), revision),
    );
    const first = sealEvents(events.slice(0, 2), undefined, key, new Date('2026-03-01T10:01:00.000Z'));
    const second = sealEvents(events.slice(2), first, key, new Date('2026-03-01T10:02:00.000Z'));
    expect(first).toMatchObject({
      sequence: 0,
      afterPosition: null,
      eventCount: 2,
      previousDigestHash: null,
    });
    expect(second).toMatchObject({
      sequence: 1,
      afterPosition: first.lastPosition,
      previousDigestHash: digestHash(first),
    });
    expect(digestSignatureValid(first, keys)).toBe(true);
    expect(digestSignatureValid(second, keys)).toBe(true);
    // Key order does not matter to canonical JSON.
    const reordered = Object.fromEntries(Object.entries(first).reverse()) as typeof first;
    expect(signedBytes(reordered).equals(signedBytes(first))).toBe(true);
    for (const change of [
      { sealedAt: '2026-03-01T10:01:00.001Z' },
      { eventCount: 3 },
      { merkleRoot: '0'.repeat(64) },
      { lastPosition: '1/1' },
    ]) {
      expect(digestSignatureValid({ ...first, ...change }, keys)).toBe(false);
    }
    const signature = Buffer.from(first.signature, 'base64');
    signature.writeUInt8(signature.readUInt8(0) ^ 1, 0);
    expect(digestSignatureValid({ ...first, signature: signature.toString('base64') }, keys)).toBe(false);
  });
});
