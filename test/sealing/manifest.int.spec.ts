/**
 * Signed manifests of the terminations CSV and the replay: over HTTP as the `calltrail-manifest`
 * trailer, from the commands as `FILE.manifest.json`; offline verification checks the file against
 * its manifest (size, SHA-256, count, signature, the digest it names) and names a changed byte.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeManifestTrailer, manifestTrailer } from '../../src/audit/manifest-trailer.ts';
import { runExport } from '../../src/cli/export.ts';
import { parseReplayOptions, runReplay } from '../../src/cli/replay.ts';
import { readDigestFiles, writeDigestFile } from '../../src/sealing/digest-files.ts';
import { readDigestEvents } from '../../src/sealing/digest-stream.ts';
import { isDigest } from '../../src/sealing/digest.ts';
import { isManifest, manifestFileName, type Manifest } from '../../src/sealing/manifest.ts';
import { verifyOffline, type OfflineReport } from '../../src/sealing/offline-verify.ts';
import { bearer, projectCall } from '../audit/support.ts';
import { openSealedCallFixture, type SealedCallFixture } from './sealed-call.ts';

const digestEntries = (directory: string) =>
  (async function* () {
    for await (const entry of readDigestFiles(directory))
      yield { where: entry.file, type: 'archive-digest', data: entry.data };
  })();

const flipByte = (bytes: Buffer, offset: number): Buffer => {
  const copy = Buffer.from(bytes);
  copy[offset] = copy[offset] === 0x30 ? 0x31 : 0x30;
  return copy;
};

describe('signed manifests', () => {
  let fixture: SealedCallFixture;
  let directory: string;
  let digests: string;
  const callId = `manifest-${crypto.randomUUID()}`;

  beforeAll(async () => {
    fixture = await openSealedCallFixture('postgres');
    directory = await mkdtemp(path.join(tmpdir(), 'calltrail-manifest-'));
    digests = path.join(directory, 'digests');
    for (let index = 0; index < 3; index += 1) await fixture.post(callId);
    await fixture.post(callId, { status: 'ended' });
    await projectCall(fixture.stores, callId);
    await fixture.sealEverything();
    for await (const entry of readDigestEvents(fixture.stores.eventStore))
      if (isDigest(entry.data)) await writeDigestFile(digests, entry.data);
  }, 60_000);
  afterAll(async () => {
    await fixture?.close();
    if (directory !== undefined) await rm(directory, { recursive: true, force: true });
  });

  const verify = (file: string, manifest?: unknown): Promise<OfflineReport> =>
    verifyOffline({
      file,
      keys: new Map([[fixture.key.keyId, fixture.key]]),
      digests: digestEntries(digests),
      ...(manifest === undefined ? {} : { manifest: { where: 'the manifest', data: manifest } }),
    });
  const kinds = (report: OfflineReport) => report.findings.map((finding) => finding.kind);

  it('sends the replay with a manifest trailer that verifies the body, and fails a changed byte', async () => {
    const response = await fixture.test.app.inject({
      method: 'GET',
      url: `/replay?prefix=call-${callId}`,
      headers: bearer(),
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['trailer']).toBe(manifestTrailer);
    const manifest = decodeManifestTrailer(response.trailers[manifestTrailer] as string);
    expect(isManifest(manifest)).toBe(true);
    expect(manifest).toMatchObject({ kind: 'replay', count: 4, query: { prefix: `call-${callId}` } });
    expect((manifest as Manifest).lastDigest).not.toBeNull();
    const file = path.join(directory, 'replay.jsonl');
    await writeFile(file, response.rawPayload);
    const clean = await verify(file, manifest);
    expect(clean.findings).toEqual([]);
    expect(clean.ok).toBe(true);
    const changed = path.join(directory, 'replay-changed.jsonl');
    await writeFile(changed, flipByte(response.rawPayload, response.rawPayload.indexOf('"storedAt"') + 14));
    expect(kinds(await verify(changed, manifest))).toEqual(['manifest-mismatch']);
    const forged = { ...(manifest as Manifest), count: 3 };
    expect(kinds(await verify(file, forged))).toEqual(['manifest-signature', 'manifest-mismatch']);
  });

  it('sends the terminations CSV with a manifest trailer that verifies it', async () => {
    const response = await fixture.test.app.inject({
      method: 'GET',
      url: '/exports/terminations.csv?from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z',
      headers: bearer(),
    });
    expect(response.statusCode).toBe(200);
    const manifest = decodeManifestTrailer(response.trailers[manifestTrailer] as string);
    expect(manifest).toMatchObject({ kind: 'terminations-csv', count: 1 });
    const file = path.join(directory, 'terminations.csv');
    await writeFile(file, response.rawPayload);
    expect((await verify(file, manifest)).findings).toEqual([]);
    await writeFile(file, flipByte(response.rawPayload, response.rawPayload.length - 5));
    expect(kinds(await verify(file, manifest))).toEqual(['manifest-mismatch']);
  });

  it('writes FILE.manifest.json beside the files the commands write', async () => {
    const replayFile = path.join(directory, 'cli-replay.jsonl');
    const outcome = await runReplay(parseReplayOptions({ call: callId, out: replayFile }), {
      eventStore: fixture.stores.eventStore,
      stdout: new PassThrough(),
      stderr: new PassThrough(),
      sealingKey: fixture.key,
    });
    expect(outcome.result).toBe('completed');
    const replayManifest = JSON.parse(await readFile(manifestFileName(replayFile), 'utf8')) as unknown;
    expect(replayManifest).toMatchObject({ kind: 'replay', count: 4, query: { call: callId } });
    expect((await verify(replayFile, replayManifest)).findings).toEqual([]);

    const csvFile = path.join(directory, 'cli-terminations.csv');
    const rows = await runExport(
      {
        filter: { from: new Date('2025-01-01T00:00:00Z'), to: new Date('2026-01-01T00:00:00Z') },
        out: csvFile,
      },
      {
        pool: fixture.stores.database.pool,
        progress: new PassThrough(),
        manifest: { eventStore: fixture.stores.eventStore, key: fixture.key },
      },
    );
    expect(rows).toBe(1);
    const csvManifest = JSON.parse(await readFile(manifestFileName(csvFile), 'utf8')) as unknown;
    expect(csvManifest).toMatchObject({ kind: 'terminations-csv', count: 1 });
    expect((await verify(csvFile, csvManifest)).ok).toBe(true);
  });
});
