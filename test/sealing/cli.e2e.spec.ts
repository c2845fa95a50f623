/**
 * `calltrail seal` and `calltrail verify` as a user runs them: the real binary in a child process,
 * on a PostgreSQL event store given by URL, with the signing key in a file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callStreamName } from '../../src/archive/streams.ts';
import type { EventStore } from '../../src/event-store/event-store.ts';
import { openPostgresEventStore } from '../../src/event-store/postgres/postgres-event-store.ts';
import { readDigestEvents } from '../../src/sealing/digest-stream.ts';
import { generateSigningKey } from '../../src/sealing/signing-key.ts';
import type { VerifyReport } from '../../src/sealing/verify.ts';
import { proposedCallEvent, statusUpdate } from '../support/call-events.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { waitFor } from '../support/wait.ts';

const binary = fileURLToPath(new URL('../../bin/calltrail.js', import.meta.url));

let database: TestDatabase;
let eventStore: EventStore;
let scratch: string;
const key = generateSigningKey();
const callIds = ['cli-seal-1', 'cli-seal-2', 'cli-seal-3'];

const environment = () => ({
  PATH: process.env['PATH'],
  HOME: process.env['HOME'],
  CALLTRAIL_EVENTSTORE_URL: database.url,
  CALLTRAIL_DATABASE_URL: database.url,
  CALLTRAIL_LOG_LEVEL: 'warn',
  CALLTRAIL_SEALING_KEY_FILE: path.join(scratch, 'sealing-key.pem'),
  CALLTRAIL_SEAL_EVERY_EVENTS: '4',
  CALLTRAIL_SEAL_EVERY_SECONDS: '0.2',
});

const start = (args: readonly string[]) =>
  spawn(process.execPath, [binary, ...args], { env: environment(), stdio: ['ignore', 'pipe', 'pipe'] });

const finish = (child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });

const run = (args: readonly string[]) => finish(start(args));

const sealedCount = async () => {
  let count = 0;
  for await (const entry of readDigestEvents(eventStore))
    count += (entry.data as { eventCount: number }).eventCount;
  return count;
};

beforeAll(async () => {
  database = await createTestDatabase('sealing_cli');
  eventStore = await openPostgresEventStore(database.url, { timeoutMs: 5_000 });
  scratch = await mkdtemp(path.join(os.tmpdir(), 'calltrail-seal-'));
  await writeFile(
    path.join(scratch, 'sealing-key.pem'),
    key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  );
  await writeFile(path.join(scratch, 'public.pem'), key.publicKeyPem);
  for (const [index, callId] of callIds.entries()) {
    const events = [0, 1, 2].map((second) =>
      proposedCallEvent(statusUpdate(callId, 'in-progress', `2026-03-01T10:0${index}:0${second}.000Z`)),
    );
    await eventStore.append(callStreamName(callId), events, 'no-stream');
  }
});

afterAll(async () => {
  await eventStore?.close();
  await database?.drop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe('calltrail seal and verify', { timeout: 180_000 }, () => {
  it('seals with the configured key, prints its public key, and stops cleanly on SIGTERM', async () => {
    const sealer = start(['seal']);
    const done = finish(sealer);
    await waitFor('the sealer to seal every event', async () => (await sealedCount()) >= 9, 60_000);
    sealer.kill('SIGTERM');
    const { code, stderr } = await done;
    expect(code).toBe(0);
    expect(stderr).toContain(key.publicKeyPem);
    const printed = await run(['seal', '--public-key']);
    expect(printed).toMatchObject({ code: 0, stdout: key.publicKeyPem });
  });

  it('verifies the untouched archive: all, one call, a time range, digest files; text and JSON', async () => {
    const publicKey = path.join(scratch, 'public.pem');
    const all = await run(['verify', '--public-key', publicKey]);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toMatch(/^OK: scope all; 3 digests; 9 sealed events checked/m);
    const json = await run(['verify', '--public-key', publicKey, '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, eventsChecked: 9, findings: [] });
    const call = await run(['verify', '--public-key', publicKey, '--call', callIds[1]!, '--json']);
    expect(JSON.parse(call.stdout)).toMatchObject({ ok: true, eventsChecked: 3 });
    const range = await run([
      'verify',
      '--public-key',
      publicKey,
      '--from',
      '2000-01-01T00:00:00Z',
      '--to',
      '2100-01-01T00:00:00Z',
    ]);
    expect(range.code).toBe(0);
    const directory = path.join(scratch, 'digests');
    expect((await run(['seal', '--export-digests', directory])).code).toBe(0);
    expect((await readdir(directory)).sort()).toEqual([
      'digest-000000000000.json',
      'digest-000000000001.json',
      'digest-000000000002.json',
    ]);
    const files = await run(['verify', '--public-key', publicKey, '--digests', directory]);
    expect(files.code, files.stdout).toBe(0);
  });

  it('exports a call as evidence and a replay with its manifest, both verified offline with no configuration', async () => {
    const directory = path.join(scratch, 'digests');
    const bundle = path.join(scratch, 'call.evidence.json');
    const exported = await run(['export', 'evidence', '--call', callIds[0]!, '--out', bundle]);
    expect(exported.code, exported.stderr).toBe(0);
    expect(exported.stderr).toMatch(/wrote 3 events .*all sealed/);
    const replay = path.join(scratch, 'call.jsonl');
    const replayed = await run(['replay', '--call', callIds[1]!, '--out', replay]);
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(replayed.stderr).toContain(`signed manifest: ${replay}.manifest.json`);
    // Offline: nothing but the files, the digest files and the public key (here as hex).
    const offline = (args: readonly string[]) =>
      finish(
        spawn(process.execPath, [binary, 'verify', '--offline', ...args], {
          env: { PATH: process.env['PATH'], HOME: process.env['HOME'] },
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      );
    const hex = Buffer.from(key.publicKey.export({ format: 'jwk' }).x!, 'base64url').toString('hex');
    const bundleReport = await offline(['--public-key', hex, '--digests', directory, bundle]);
    expect(bundleReport.code, bundleReport.stdout + bundleReport.stderr).toBe(0);
    expect(bundleReport.stdout).toMatch(/^OK: scope .*call cli-seal-1.*3 sealed events checked/m);
    const replayReport = await offline([
      '--public-key',
      path.join(scratch, 'public.pem'),
      '--digests',
      directory,
      '--json',
      replay,
    ]);
    expect(replayReport.code, replayReport.stdout + replayReport.stderr).toBe(0);
    expect(JSON.parse(replayReport.stdout)).toMatchObject({ ok: true, eventsChecked: 3, findings: [] });
    await writeFile(replay, (await readFile(replay, 'utf8')).replace('"revision":1', '"revision":2'));
    const changed = await offline(['--public-key', hex, '--digests', directory, replay]);
    expect(changed.code).toBe(1);
    expect(changed.stdout).toMatch(/^MODIFIED .*revision 2/m);
    expect(changed.stdout).toMatch(/^MANIFEST-MISMATCH /m);
    const withoutDigests = await offline(['--public-key', hex, replay]);
    expect(withoutDigests.code).toBe(2);
    expect(withoutDigests.stderr).toMatch(/--digests/);
  });

  it('refuses bad options with exit status 2, naming the option', async () => {
    const noKey = await run(['verify']);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toMatch(/--public-key/);
    const halfRange = await run([
      'verify',
      '--public-key',
      path.join(scratch, 'public.pem'),
      '--from',
      '2026-01-01T00:00:00Z',
    ]);
    expect(halfRange.code).toBe(2);
    expect(halfRange.stderr).toMatch(/--from and --to/);
  });

  it('exits 1 and names the event when the archive was tampered with', async () => {
    const client = new pg.Client(database.url);
    await client.connect();
    let target: { position: string; stream_name: string };
    try {
      target = (
        await client.query<{ position: string; stream_name: string }>(
          `SELECT position::text AS position, stream_name FROM event_store.events WHERE stream_name = $1 AND revision = 1`,
          [callStreamName(callIds[2]!)],
        )
      ).rows[0]!;
      await client.query('ALTER TABLE event_store.events DISABLE TRIGGER USER');
      await client.query(`UPDATE event_store.events SET data = '{"forged":true}' WHERE position = $1`, [
        target.position,
      ]);
      await client.query('ALTER TABLE event_store.events ENABLE TRIGGER USER');
    } finally {
      await client.end();
    }
    const publicKey = path.join(scratch, 'public.pem');
    const text = await run(['verify', '--public-key', publicKey]);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain(`MODIFIED  digest`);
    expect(text.stdout).toContain(`${target.stream_name} revision 1`);
    expect(text.stdout).toMatch(/^FAILED: /m);
    const json = await run(['verify', '--public-key', publicKey, '--json', '--call', callIds[2]!]);
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as VerifyReport;
    expect(report.findings).toEqual([
      expect.objectContaining({ kind: 'modified', position: `${target.position}/${target.position}` }),
    ]);
  });
});
