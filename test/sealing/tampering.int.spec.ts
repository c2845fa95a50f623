/**
 * The archive verifies clean when untouched (also while ingest and sealing go on), and every kind of
 * tampering with the store underneath is found and named: on PostgreSQL by direct SQL with the
 * append-only triggers disabled, on EventStoreDB by deleting a stream or appending out of band.
 */
import { randomUUID } from 'node:crypto';
import { EventStoreDBClient, jsonEvent } from '@eventstore/db-client';
import { afterEach, describe, expect, it } from 'vitest';
import { digestStreamName } from '../../src/sealing/digest-stream.ts';
import {
  bodyOfDigest,
  digestHash,
  digestType,
  leavesOf,
  sealEvents,
  signedBytes,
  type Digest,
} from '../../src/sealing/digest.ts';
import { generateSigningKey, signBytes } from '../../src/sealing/signing-key.ts';
import type { VerifyReport } from '../../src/sealing/verify.ts';
import { proposedCallEvent, statusUpdate } from '../support/call-events.ts';
import { openArchive, type ArchiveUnderTest } from './archive-sealing.ts';

const collect = async <T>(source: AsyncIterable<T>): Promise<T[]> => {
  const items: T[] = [];
  for await (const item of source) items.push(item);
  return items;
};

const kinds = (report: VerifyReport) => [...new Set(report.findings.map((finding) => finding.kind))].sort();

const opened: ArchiveUnderTest[] = [];
const archiveOn = async (kind: 'postgres' | 'eventstoredb') => {
  const archive = await openArchive(kind);
  opened.push(archive);
  return archive;
};

afterEach(async () => {
  for (const archive of opened.splice(0)) await archive.close();
});

/** Three calls, twelve events, sealed in digests of five. */
const sealedArchive = async (kind: 'postgres' | 'eventstoredb') => {
  const archive = await archiveOn(kind);
  const calls = [await archive.writeCall(4), await archive.writeCall(4), await archive.writeCall(4)];
  await archive.sealEverything();
  const clean = await archive.verify();
  expect(clean).toMatchObject({ ok: true, digests: 3, eventsChecked: 12, unsealedEvents: 0, findings: [] });
  return { archive, calls };
};

/** The events table's rows in global order (PostgreSQL). */
const rows = async (archive: ArchiveUnderTest) =>
  (
    await archive.sql(
      `SELECT e.position::text AS position, e.stream_name, e.revision::text AS revision
         FROM event_store.events e WHERE e.stream_name LIKE 'call-%' ORDER BY e.position`,
    )
  ).rows as { position: string; stream_name: string; revision: string }[];

const withTriggersOff = async (archive: ArchiveUnderTest, statements: string[]) => {
  await archive.sql('ALTER TABLE event_store.events DISABLE TRIGGER USER');
  try {
    for (const statement of statements) await archive.sql(statement);
  } finally {
    await archive.sql('ALTER TABLE event_store.events ENABLE TRIGGER USER');
  }
};

/**
 * Rewrites the archive's digests as version 1 would have written them (the same leaves as JSON
 * tuples, signed and chained again), as an archive sealed before version 2 holds them.
 */
const rewriteAsVersion1 = async (archive: ArchiveUnderTest) => {
  const stored = (
    await archive.sql(
      `SELECT position::text AS position, data::text AS data FROM event_store.events
        WHERE stream_name = $1 ORDER BY revision`,
      [digestStreamName],
    )
  ).rows as { position: string; data: string }[];
  let previous: Digest | undefined;
  await archive.sql('ALTER TABLE event_store.events DISABLE TRIGGER USER');
  try {
    for (const row of stored) {
      const current = JSON.parse(row.data) as Digest;
      expect(current.version).toBe(2);
      const body = {
        ...bodyOfDigest(current),
        version: 1 as const,
        previousDigestHash: previous === undefined ? null : digestHash(previous),
      };
      const rewritten: Digest = {
        ...body,
        signature: signBytes(archive.key, signedBytes(body)),
        leaves: [...leavesOf(current)],
      };
      await archive.sql(`UPDATE event_store.events SET data = $1::json WHERE position = $2`, [
        JSON.stringify(rewritten),
        row.position,
      ]);
      previous = rewritten;
    }
  } finally {
    await archive.sql('ALTER TABLE event_store.events ENABLE TRIGGER USER');
  }
};

describe('tampering with the PostgreSQL event store', () => {
  it('finds an event changed by an UPDATE with the triggers disabled, and names it', async () => {
    const { archive } = await sealedArchive('postgres');
    const target = (await rows(archive))[6]!;
    await withTriggersOff(archive, [
      `UPDATE event_store.events SET data = json_build_object('forged', true) WHERE position = ${target.position}`,
    ]);
    const report = await archive.verify();
    expect(report.ok).toBe(false);
    expect(report.findings).toEqual([
      expect.objectContaining({
        kind: 'modified',
        digest: 1,
        position: `${target.position}/${target.position}`,
        stream: target.stream_name,
        revision: target.revision,
      }),
    ]);
  });

  it('finds a changed event even when the database is made to hash it as it was', async () => {
    const { archive } = await sealedArchive('postgres');
    const target = (await rows(archive))[6]!;
    await withTriggersOff(archive, [
      `UPDATE event_store.events SET data = json_build_object('forged', true) WHERE position = ${target.position}`,
      // What whoever owns the schema can also do: have the database's own hash function answer
      // with the hash recorded when the event was first written.
      `CREATE OR REPLACE FUNCTION event_store.event_hash(
         stream_name text, revision bigint, event_id uuid, event_type text, data json, metadata json
       ) RETURNS bytea LANGUAGE sql STABLE
       AS $$ SELECT e.hash FROM event_store.events e WHERE e.stream_name = $1 AND e.revision = $2 $$`,
    ]);
    const report = await archive.verify();
    expect(report.ok).toBe(false);
    expect(report.findings).toEqual([
      expect.objectContaining({
        kind: 'modified',
        position: `${target.position}/${target.position}`,
        stream: target.stream_name,
        revision: target.revision,
      }),
    ]);
  });

  it('finds a change of a single byte, even one that keeps the JSON equivalent', async () => {
    const { archive } = await sealedArchive('postgres');
    const target = (await rows(archive))[0]!;
    // Whitespace only: the same JSON value, other stored bytes.
    await withTriggersOff(archive, [
      `UPDATE event_store.events SET metadata = (' ' || metadata::text)::json WHERE position = ${target.position}`,
    ]);
    expect(kinds(await archive.verify())).toEqual(['modified']);
  });

  it('names each change under its own digest when many digests are read back together', async () => {
    const archive = await archiveOn('postgres');
    for (let call = 0; call < 12; call += 1) await archive.writeCall(5);
    await archive.sealEverything();
    const all = await rows(archive);
    expect(all).toHaveLength(60);
    const changed = all[27]!;
    const deleted = all[52]!;
    await withTriggersOff(archive, [
      `UPDATE event_store.events SET data = json_build_object('forged', true) WHERE position = ${changed.position}`,
      `DELETE FROM event_store.events WHERE position = ${deleted.position}`,
    ]);
    const report = await archive.verify();
    expect(report).toMatchObject({ ok: false, digests: 12 });
    expect(report.findings).toEqual([
      expect.objectContaining({
        kind: 'modified',
        digest: 5,
        position: `${changed.position}/${changed.position}`,
      }),
      expect.objectContaining({
        kind: 'missing',
        digest: 10,
        position: `${deleted.position}/${deleted.position}`,
      }),
    ]);
  });

  it('finds a deleted event', async () => {
    const { archive } = await sealedArchive('postgres');
    const target = (await rows(archive))[3]!;
    await withTriggersOff(archive, [`DELETE FROM event_store.events WHERE position = ${target.position}`]);
    const report = await archive.verify();
    expect(report.findings).toEqual([
      expect.objectContaining({
        kind: 'missing',
        position: `${target.position}/${target.position}`,
        digest: 0,
      }),
    ]);
  });

  it('finds a forged event inserted into a sealed range', async () => {
    const archive = await archiveOn('postgres');
    await archive.writeCall(3);
    // A rolled-back append leaves a hole in the positions, where a forger can later insert.
    await archive.sql(`BEGIN; INSERT INTO event_store.events (stream_name, revision, event_id, event_type, data, metadata)
      VALUES ('call-rolled-back', 0, '${randomUUID()}', 'status-update', '{}', '{}'); ROLLBACK;`);
    await archive.writeCall(3);
    await archive.sealEverything();
    expect((await archive.verify()).ok).toBe(true);
    const positions = (await rows(archive)).map((row) => BigInt(row.position));
    const hole =
      positions.find((position, index) => index > 0 && position - positions[index - 1]! > 1n)! - 1n;
    await archive.sql(
      `INSERT INTO event_store.events (position, stream_name, revision, event_id, event_type, data, metadata)
       OVERRIDING SYSTEM VALUE VALUES ($1, 'call-forged', 0, $2, 'status-update', '{"forged":true}', '{}')`,
      [hole.toString(), randomUUID()],
    );
    const report = await archive.verify();
    expect(report.findings).toEqual([
      expect.objectContaining({ kind: 'inserted', position: `${hole}/${hole}`, stream: 'call-forged' }),
    ]);
  });

  it('finds two events swapped', async () => {
    const { archive } = await sealedArchive('postgres');
    const [, a, b] = await rows(archive);
    const columns = 'stream_name, revision, event_id, event_type, data, metadata';
    await withTriggersOff(archive, [
      `CREATE TEMP TABLE swap AS SELECT position, ${columns} FROM event_store.events WHERE position IN (${a!.position}, ${b!.position})`,
      `UPDATE event_store.events SET stream_name = 'swap-' || position WHERE position IN (${a!.position}, ${b!.position})`,
      `UPDATE event_store.events e SET (stream_name, revision, event_id, event_type, data, metadata) =
         (SELECT ${columns} FROM swap s WHERE s.position = CASE e.position WHEN ${a!.position} THEN ${b!.position} ELSE ${a!.position} END)
       WHERE e.position IN (${a!.position}, ${b!.position})`,
    ]);
    const report = await archive.verify();
    expect(report.findings.map((finding) => [finding.kind, finding.position])).toEqual([
      ['reordered', `${a!.position}/${a!.position}`],
      ['reordered', `${b!.position}/${b!.position}`],
    ]);
  });

  it('finds a removed digest, an altered digest and an altered leaf list', async () => {
    const { archive } = await sealedArchive('postgres');
    const digestRow = async (revision: number) =>
      (
        await archive.sql(
          `SELECT position::text FROM event_store.events WHERE stream_name = $1 AND revision = $2`,
          [digestStreamName, revision],
        )
      ).rows[0] as { position: string };
    const first = await digestRow(0);
    const second = await digestRow(1);
    await withTriggersOff(archive, [
      // The first digest claims another time: its signature no longer holds.
      `UPDATE event_store.events SET data = jsonb_set(data::jsonb, '{sealedAt}', '"2020-01-01T00:00:00.000Z"')::json
        WHERE position = ${first.position}`,
    ]);
    expect(kinds(await archive.verify())).toEqual(['bad-signature', 'broken-chain']);
    await withTriggersOff(archive, [`DELETE FROM event_store.events WHERE position = ${second.position}`]);
    const removed = await archive.verify();
    expect(removed.findings).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'broken-chain', digest: 2 }),
        expect.objectContaining({ kind: 'bad-signature', digest: 0 }),
      ]),
    );
  });

  it('finds a leaf list that no longer matches its signed root', async () => {
    const { archive } = await sealedArchive('postgres');
    // The first event hash of the second digest's leaf table: four base64 characters changed.
    await withTriggersOff(archive, [
      `UPDATE event_store.events
          SET data = jsonb_set(data::jsonb, '{leafTable,hashes}', to_jsonb(
            CASE WHEN left(data->'leafTable'->>'hashes', 4) = 'AAAA' THEN 'BBBB' ELSE 'AAAA' END
            || substr(data->'leafTable'->>'hashes', 5)))::json
        WHERE stream_name = '${digestStreamName}' AND revision = 1`,
    ]);
    const report = await archive.verify();
    expect(report.findings).toEqual(
      expect.arrayContaining([expect.objectContaining({ kind: 'digest-altered', digest: 1 })]),
    );
  });

  it('finds a leaf table that cannot be read', async () => {
    const { archive } = await sealedArchive('postgres');
    await withTriggersOff(archive, [
      `UPDATE event_store.events SET data = jsonb_set(data::jsonb, '{leafTable,places}', '"AA=="')::json
        WHERE stream_name = '${digestStreamName}' AND revision = 2`,
    ]);
    const report = await archive.verify();
    expect(report.findings).toEqual(
      expect.arrayContaining([expect.objectContaining({ kind: 'digest-altered', digest: 2 })]),
    );
  });

  it('still verifies version 1 digests (a JSON tuple per leaf), and names tampering under them', async () => {
    const { archive } = await sealedArchive('postgres');
    await rewriteAsVersion1(archive);
    const clean = await archive.verify();
    expect(clean).toMatchObject({ ok: true, digests: 3, eventsChecked: 12, findings: [] });
    const target = (await rows(archive))[7]!;
    await withTriggersOff(archive, [
      `UPDATE event_store.events SET data = json_build_object('forged', true) WHERE position = ${target.position}`,
      `UPDATE event_store.events SET data = jsonb_set(data::jsonb, '{leaves,0,3}', to_jsonb(repeat('0', 64)))::json
        WHERE stream_name = '${digestStreamName}' AND revision = 2`,
    ]);
    const report = await archive.verify();
    expect(report.findings).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'digest-altered', digest: 2 }),
        expect.objectContaining({
          kind: 'modified',
          digest: 1,
          position: `${target.position}/${target.position}`,
          stream: target.stream_name,
        }),
      ]),
    );
    expect(report.findings.filter((finding) => finding.digest === 1)).toHaveLength(1);
  });

  it('verifies one call, and names what is wrong with it', async () => {
    const { archive, calls } = await sealedArchive('postgres');
    const call = calls[1]!;
    expect(await archive.verify({ kind: 'stream', streamName: call })).toMatchObject({
      ok: true,
      eventsChecked: 4,
    });
    await withTriggersOff(archive, [
      `DELETE FROM event_store.events WHERE stream_name = '${call}' AND revision = 2`,
    ]);
    const report = await archive.verify({ kind: 'stream', streamName: call });
    expect(report.findings).toEqual([
      expect.objectContaining({ kind: 'missing', stream: call, revision: '2' }),
    ]);
    // Another call is untouched.
    expect((await archive.verify({ kind: 'stream', streamName: calls[0]! })).ok).toBe(true);
  });
});

describe.each(['postgres', 'eventstoredb'] as const)('sealing on %s', (kind) => {
  it('verifies clean while ingest and sealing go on, and the unsealed tail is reported, not failed', async () => {
    const archive = await archiveOn(kind);
    const sealer = archive.startSealer();
    try {
      const writers = Promise.all(
        [1, 2, 3].map(async () => {
          for (let call = 0; call < 4; call += 1) await archive.writeCall(3);
        }),
      );
      const reports: VerifyReport[] = [];
      let writing = true;
      void writers.finally(() => {
        writing = false;
      });
      while (writing) reports.push(await archive.verify());
      await writers;
      reports.push(await archive.verify());
      for (const report of reports) expect(report.findings).toEqual([]);
      expect(reports.length).toBeGreaterThan(1);
    } finally {
      await sealer.stop();
    }
    const final = await archive.verify();
    expect(final.eventsChecked + final.unsealedEvents).toBe(36);
  });

  it('reads digests only so far ahead of the events it has compared, so its memory is bounded', async () => {
    const archive = await archiveOn(kind);
    for (let call = 0; call < 7; call += 1) await archive.writeCall(5);
    // A digest per event: more digests than the digest stream is read in at a time.
    await archive.sealEverything({ maxEvents: 1 });
    let sealedRead = 0;
    let mostAhead = 0;
    const totals: string[] = [];
    const report = await archive.verify(
      { kind: 'all' },
      {
        maxEventsAhead: 10,
        onDigestRead: (data) => {
          sealedRead += (data as { eventCount: number }).eventCount;
        },
        onProgress: (eventsChecked, totalSealed, allDigestsRead) => {
          mostAhead = Math.max(mostAhead, sealedRead - eventsChecked);
          totals.push(`${totalSealed}${allDigestsRead ? '' : '+'}`);
        },
      },
    );
    expect(report).toMatchObject({ ok: true, digests: 35, eventsChecked: 35, findings: [] });
    // Ten events ahead at most, and the digest that went past them.
    expect(sealedRead).toBe(35);
    expect(mostAhead).toBeLessThanOrEqual(11);
    // Progress says when its total is not yet the whole, and ends with the whole.
    expect(totals[0]).toMatch(/\+$/);
    expect(totals.at(-1)).toBe('35');
    // Within the default bound, the total is the whole from the first report.
    const wholeTotals = new Set<string>();
    await archive.verify(
      { kind: 'all' },
      {
        onProgress: (_, totalSealed, allDigestsRead) => {
          wholeTotals.add(`${totalSealed}${allDigestsRead ? '' : '+'}`);
        },
      },
    );
    expect([...wholeTotals]).toEqual(['35']);
  });

  it('names events left unsealed for longer than sealing takes', async () => {
    const { archive } = await sealedArchive(kind);
    await archive.writeCall(2);
    expect(await archive.verify()).toMatchObject({ ok: true, unsealedEvents: 2 });
    const report = await archive.verify({ kind: 'all' }, { unsealedGraceMs: -1 });
    expect(report.findings).toEqual([expect.objectContaining({ kind: 'unsealed-tail' })]);
  });

  it('refuses digests under a key it was not given', async () => {
    const { archive } = await sealedArchive(kind);
    const report = await archive.verify({ kind: 'all' }, { keys: [generateSigningKey()] });
    expect(kinds(report)).toEqual(['bad-signature']);
    expect(report.findings).toHaveLength(3);
  });

  it('keeps one chain with two sealers running: one seals, the other stands by', async () => {
    const archive = await archiveOn(kind);
    const [first, second] = [archive.startSealer(), archive.startSealer()];
    try {
      for (let call = 0; call < 4; call += 1) await archive.writeCall(3);
      const deadline = Date.now() + 20_000;
      while (
        (first.lastDigest ?? second.lastDigest)?.lastPosition === undefined ||
        (await archive.verify()).unsealedEvents > 0
      ) {
        if (Date.now() > deadline) throw new Error('timed out waiting for sealing');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect([first.role, second.role].sort()).toEqual(['active', 'standby']);
    } finally {
      await first.stop();
      await second.stop();
    }
    expect(await archive.verify()).toMatchObject({ ok: true, eventsChecked: 12 });
  });

  it('a forged digest appended to the digest stream fails the chain and the signature', async () => {
    const { archive } = await sealedArchive(kind);
    const forger = generateSigningKey();
    const [first] = await collect(archive.eventStore.readAll({ streamPrefixes: ['call-'], maxCount: 1 }));
    const forged = sealEvents([first!], undefined, forger, new Date());
    await archive.eventStore.append(
      digestStreamName,
      [{ id: randomUUID(), type: digestType, data: forged, metadata: {} }],
      'stream-exists',
    );
    expect(kinds(await archive.verify())).toEqual(['bad-signature', 'broken-chain']);
  });
});

describe('tampering with the EventStoreDB event store', () => {
  it('finds a deleted stream', async () => {
    const { archive, calls } = await sealedArchive('eventstoredb');
    const client = EventStoreDBClient.connectionString(archive.server!.url);
    try {
      await client.deleteStream(calls[1]!);
    } finally {
      await client.dispose();
    }
    const report = await archive.verify();
    expect(report.ok).toBe(false);
    expect(report.findings).toEqual([expect.objectContaining({ kind: 'missing', stream: calls[1] })]);
    const one = await archive.verify({ kind: 'stream', streamName: calls[1]! });
    expect(kinds(one)).toEqual(['missing']);
    expect(one.findings).toHaveLength(4);
  });

  it('finds an event appended out of band once it is older than sealing takes', async () => {
    const { archive, calls } = await sealedArchive('eventstoredb');
    const client = EventStoreDBClient.connectionString(archive.server!.url);
    try {
      const callId = calls[0]!.slice('call-'.length);
      const { data, metadata } = proposedCallEvent(statusUpdate(callId, 'ended', '2026-03-01T11:00:00.000Z'));
      await client.appendToStream(
        calls[0]!,
        jsonEvent({ type: 'status-update', data: data as never, metadata: metadata as never }),
      );
    } finally {
      await client.dispose();
    }
    const report = await archive.verify({ kind: 'all' }, { unsealedGraceMs: -1 });
    expect(report.findings).toEqual([
      expect.objectContaining({ kind: 'unsealed-tail', stream: calls[0], revision: '4' }),
    ]);
    const one = await archive.verify({ kind: 'stream', streamName: calls[0]! }, { unsealedGraceMs: -1 });
    expect(kinds(one)).toEqual(['unsealed-tail']);
  });
});
