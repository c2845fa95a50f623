/**
 * The PostgreSQL store computes event hashes in SQL; they must be byte for byte the hashes
 * `eventHash` gives over what any reader gets back, on awkward content too, or every digest sealed
 * by one path would fail verification by the other. The reader's own hashing (for stores without
 * the SQL path) must page through the same events identically.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callStreamName, sealedStreamPrefixes } from '../../src/archive/streams.ts';
import {
  formatPosition,
  type EventStore,
  type FingerprintRangeOptions,
  type GlobalPosition,
  type HashedEvent,
} from '../../src/event-store/event-store.ts';
import {
  openPostgresEventStore,
  type PostgresEventStore,
} from '../../src/event-store/postgres/postgres-event-store.ts';
import { eventHash } from '../../src/sealing/event-hash.ts';
import { digestType, sealHashedEvents } from '../../src/sealing/digest.ts';
import { hashedEventsAfter, readHashPage } from '../../src/sealing/event-hashes.ts';
import { rangeFingerprint, tableOfHashedEvents } from '../../src/sealing/leaf-table.ts';
import { generateSigningKey } from '../../src/sealing/signing-key.ts';
import { verifyArchive } from '../../src/sealing/verify.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

let database: TestDatabase;
let store: PostgresEventStore;
let pool: pg.Pool;

beforeAll(async () => {
  database = await createTestDatabase('event_hashes');
  store = await openPostgresEventStore(database.url, { timeoutMs: 10_000 });
  pool = new pg.Pool({ connectionString: database.url, max: 2 });
  pool.on('error', () => {});
});

afterAll(async () => {
  await store?.close();
  await pool?.end();
  await database?.drop();
});

/** The same store, but without the SQL path: the reader hashes what `readAll` returns. */
const withoutSqlHashes = (eventStore: EventStore): EventStore => ({
  kind: eventStore.kind,
  reportsWrites: eventStore.reportsWrites,
  append: (...args) => eventStore.append(...args),
  readStream: (...args) => eventStore.readStream(...args),
  readAll: (...args) => eventStore.readAll(...args),
  subscribeToAll: (...args) => eventStore.subscribeToAll(...args),
  ping: () => eventStore.ping(),
  close: () => eventStore.close(),
});

const collect = async (events: AsyncIterable<HashedEvent>): Promise<HashedEvent[]> => {
  const all: HashedEvent[] = [];
  for await (const event of events) all.push(event);
  return all;
};

/** What the reference encoding gives over the events as read back in full. */
const referenceHashes = async () => {
  const expected: HashedEvent[] = [];
  for await (const event of store.readAll({ streamPrefixes: sealedStreamPrefixes })) {
    expected.push({
      position: event.position,
      streamName: event.streamName,
      revision: event.revision,
      hash: eventHash(event).toString('hex'),
      created: event.created,
    });
  }
  return expected;
};

const awkwardData: [string, unknown, unknown][] = [
  ['empty metadata', { callId: 'a' }, {}],
  ['null metadata and empty-string data', '', null],
  ['non-ASCII', { name: 'Zoë Ñandú 東京 😀', note: 'ẞ\u00a0\u2028' }, { source: 'près' }],
  ['control characters and escapes', { raw: '\u0000\u0001\u001f\u007f"\\/\b\f\n\r\t' }, { x: '\ud800' }],
  ['large data', { transcript: 'word '.repeat(400_000) }, { size: 'large' }],
  ['binary-ish bytes', { bytes: String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i)) }, {}],
];

describe('event hashes computed by PostgreSQL', () => {
  beforeAll(async () => {
    for (const [label, data, metadata] of awkwardData) {
      const result = await store.append(
        callStreamName(`hashes-${label.replaceAll(' ', '-')}-ë-${randomUUID()}`),
        [{ id: randomUUID().toUpperCase(), type: `status-update ${label}`, data, metadata }],
        'no-stream',
      );
      expect(result.outcome).toBe('appended');
    }
    // Text no JSON.stringify writes: whitespace, escaped non-ASCII, repeated keys, kept as stored.
    await pool.query(
      `INSERT INTO event_store.events (stream_name, revision, event_id, event_type, data, metadata)
       VALUES ($1, 0, $2, 'status-update', $3, $4)`,
      [
        callStreamName(`hashes-raw-${randomUUID()}`),
        randomUUID(),
        '{ "a" : 1,\n\t"a": "\\u00e9\\ud83d\\ude00", "b": [ ] }',
        '  {}  ',
      ],
    );
    // An event outside the sealed prefixes, which neither path may yield.
    await store.append(
      `not-sealed-${randomUUID()}`,
      [{ id: randomUUID(), type: 'other', data: {}, metadata: {} }],
      'no-stream',
    );
  });

  it('equal the reference encoding over the events as read back, for every awkward case', async () => {
    const expected = await referenceHashes();
    expect(expected).toHaveLength(awkwardData.length + 1);
    const page = await store.readEventHashes({ streamPrefixes: sealedStreamPrefixes, limit: 1_000 });
    expect(page.events).toEqual(expected);
    expect(page.reachedEnd).toBe(true);
  });

  it('page the same way as hashing in the reader, at every page boundary', async () => {
    const expected = await referenceHashes();
    const sqlPath = await collect(hashedEventsAfter(store, undefined, sealedStreamPrefixes));
    const readerPath = await collect(
      hashedEventsAfter(withoutSqlHashes(store), undefined, sealedStreamPrefixes),
    );
    expect(sqlPath).toEqual(expected);
    expect(readerPath).toEqual(expected);

    for (const eventStore of [store, withoutSqlHashes(store)]) {
      for (let start = 0; start < expected.length; start += 1) {
        const after: GlobalPosition = expected[start]!.position;
        const pageOfTwo = await readHashPage(eventStore, after, sealedStreamPrefixes, 'computed', 2);
        expect(pageOfTwo.events).toEqual(expected.slice(start + 1, start + 3));
      }
    }
  });

  it('record the same hash as each event is written, whatever hash the writer sends', async () => {
    const forged = callStreamName(`hashes-forged-${randomUUID()}`);
    await pool.query(
      `INSERT INTO event_store.events (stream_name, revision, event_id, event_type, data, metadata, hash)
       VALUES ($1, 0, $2, 'status-update', '{"callId":"forged"}', '{}', '\\x00')`,
      [forged, randomUUID()],
    );
    const expected = await referenceHashes();
    const recorded = await store.readEventHashes({
      streamPrefixes: sealedStreamPrefixes,
      limit: 1_000,
      recordedHashes: true,
    });
    expect(recorded.events).toEqual(expected);
    const { rows } = await pool.query<{ recorded: number }>(
      `SELECT count(*)::int AS recorded FROM event_store.events WHERE hash IS NOT NULL`,
    );
    expect(rows[0]?.recorded).toBe(expected.length + 1); // and the event outside the sealed prefixes
  });

  it('compute the hash where none was recorded (events written before hashes were recorded)', async () => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('ALTER TABLE event_store.events DISABLE TRIGGER events_record_hash');
      await client.query(
        `INSERT INTO event_store.events (stream_name, revision, event_id, event_type, data, metadata)
         VALUES ($1, 0, $2, 'status-update', '{"callId":"older"}', '{"a":[1,2]}')`,
        [callStreamName(`hashes-unrecorded-${randomUUID()}`), randomUUID()],
      );
      await client.query('ALTER TABLE event_store.events ENABLE TRIGGER events_record_hash');
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const { rows } = await pool.query<{ unrecorded: number }>(
      `SELECT count(*)::int AS unrecorded FROM event_store.events WHERE hash IS NULL`,
    );
    expect(rows[0]?.unrecorded).toBe(1);
    const recorded = await store.readEventHashes({
      streamPrefixes: sealedStreamPrefixes,
      limit: 1_000,
      recordedHashes: true,
    });
    expect(recorded.events).toEqual(await referenceHashes());
  });

  it('give the recorded hash only when asked: a change after writing shows in the computed one', async () => {
    const stream = callStreamName(`hashes-changed-${randomUUID()}`);
    await store.append(
      stream,
      [{ id: randomUUID(), type: 'status-update', data: { v: 1 }, metadata: {} }],
      'no-stream',
    );
    const [asWritten] = (await referenceHashes()).filter((event) => event.streamName === stream);
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('ALTER TABLE event_store.events DISABLE TRIGGER USER');
      await client.query(`UPDATE event_store.events SET data = '{"v":2}' WHERE stream_name = $1`, [stream]);
      await client.query('ALTER TABLE event_store.events ENABLE TRIGGER USER');
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const [nowStored] = (await referenceHashes()).filter((event) => event.streamName === stream);
    expect(nowStored?.hash).not.toBe(asWritten?.hash);
    const read = async (recordedHashes: boolean) =>
      (
        await store.readEventHashes({ streamPrefixes: sealedStreamPrefixes, limit: 1_000, recordedHashes })
      ).events.find((event) => event.streamName === stream);
    expect(await read(true)).toEqual(asWritten);
    expect(await read(false)).toEqual(nowStored);
    expect((await collect(hashedEventsAfter(store, undefined, sealedStreamPrefixes))).at(-1)).toEqual(
      nowStored,
    );
  });

  it('fingerprint a range exactly as the leaf table of its digest does, and tell a changed one apart', async () => {
    const events = await referenceHashes();
    const fingerprintOf = (after: GlobalPosition | undefined, last: GlobalPosition) =>
      store.fingerprintRange({ streamPrefixes: sealedStreamPrefixes, last, ...(after ? { after } : {}) });
    const tableOf = (from: number, to: number) =>
      rangeFingerprint(tableOfHashedEvents(events.slice(from, to)));
    const lastIndex = events.length - 1;
    expect(await fingerprintOf(undefined, events[lastIndex]!.position)).toEqual(tableOf(0, events.length));
    expect(await fingerprintOf(events[1]!.position, events[3]!.position)).toEqual(tableOf(2, 4));
    expect(await fingerprintOf(events[2]!.position, events[2]!.position)).toEqual(tableOf(0, 0));

    const [first, second] = events;
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('ALTER TABLE event_store.events DISABLE TRIGGER USER');
      await client.query(`UPDATE event_store.events SET metadata = '{"changed":true}' WHERE position = $1`, [
        second!.position.commit.toString(),
      ]);
      await client.query('ALTER TABLE event_store.events ENABLE TRIGGER USER');
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const changed = await fingerprintOf(first!.position, second!.position);
    expect(changed.count).toBe(1);
    expect(changed.fingerprint).not.toBe(tableOf(1, 2).fingerprint);
    expect(changed).toEqual(rangeFingerprint(tableOfHashedEvents((await referenceHashes()).slice(1, 2))));
  });

  it('verify an intact range by its fingerprint alone, and read only a changed range event by event', async () => {
    const events = await referenceHashes();
    const key = generateSigningKey();
    const firstDigest = sealHashedEvents(events.slice(0, 3), undefined, key, new Date());
    const secondDigest = sealHashedEvents(events.slice(3), firstDigest, key, new Date());
    const calls = { fingerprints: 0, hashPages: 0 };
    const counted: EventStore = {
      ...withoutSqlHashes(store),
      readEventHashes: (options) => {
        calls.hashPages += 1;
        return store.readEventHashes(options);
      },
      fingerprintRange: (options) => {
        calls.fingerprints += 1;
        return store.fingerprintRange(options);
      },
    };
    const verify = () =>
      verifyArchive(counted, {
        digests: (async function* () {
          for (const [index, digest] of [firstDigest, secondDigest].entries())
            yield { where: `digest ${index}`, type: digestType, data: digest };
        })(),
        keys: new Map([[key.keyId, key]]),
        scope: { kind: 'all' },
        streamPrefixes: sealedStreamPrefixes,
        unsealedGraceMs: 60_000,
        now: new Date(),
        checkStreams: false,
      });
    const intact = await verify();
    expect(intact).toMatchObject({ ok: true, eventsChecked: events.length, findings: [] });
    expect(calls).toEqual({ fingerprints: 2, hashPages: 1 }); // the one page: the unsealed tail

    const changedAt = events[4]!;
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('ALTER TABLE event_store.events DISABLE TRIGGER USER');
      await client.query(`UPDATE event_store.events SET data = '{"changed":true}' WHERE position = $1`, [
        changedAt.position.commit.toString(),
      ]);
      await client.query('ALTER TABLE event_store.events ENABLE TRIGGER USER');
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    calls.fingerprints = 0;
    calls.hashPages = 0;
    const changed = await verify();
    expect(changed.findings).toEqual([
      expect.objectContaining({ kind: 'modified', digest: 1, position: formatPosition(changedAt.position) }),
    ]);
    expect(calls).toEqual({ fingerprints: 2, hashPages: 2 }); // the changed range, then the tail
  });

  it('refuse a fingerprint range without its end, naming it', async () => {
    await expect(
      store.fingerprintRange({ streamPrefixes: sealedStreamPrefixes } as unknown as FingerprintRangeOptions),
    ).rejects.toThrow(/^last is required/);
  });

  it('refuse a limit outside its bounds, naming it', async () => {
    await expect(store.readEventHashes({ streamPrefixes: sealedStreamPrefixes, limit: 0 })).rejects.toThrow(
      /^limit must be/,
    );
    await expect(
      store.readEventHashes({ streamPrefixes: sealedStreamPrefixes, limit: 1_000_000 }),
    ).rejects.toThrow(/^limit must be/);
  });
});

describe('event hashes in a database whose encoding is not UTF-8', () => {
  it('are still over the UTF-8 bytes, as the reference encoding hashes them', async () => {
    const latin1 = await createTestDatabase('event_hashes_latin1', { encoding: 'LATIN1' });
    const latin1Store = await openPostgresEventStore(latin1.url, { timeoutMs: 10_000 });
    try {
      // Each of these characters is one byte in LATIN1 and two in UTF-8.
      const result = await latin1Store.append(
        callStreamName(`hashes-latin1-é-${randomUUID()}`),
        [
          {
            id: randomUUID(),
            type: 'status-update ü',
            data: { name: 'Zoë Ñandú' },
            metadata: { source: 'près' },
          },
        ],
        'no-stream',
      );
      expect(result.outcome).toBe('appended');
      const expected: string[] = [];
      for await (const event of latin1Store.readAll({ streamPrefixes: sealedStreamPrefixes })) {
        expected.push(eventHash(event).toString('hex'));
      }
      expect(expected).toHaveLength(1);
      for (const recordedHashes of [true, false]) {
        const page = await latin1Store.readEventHashes({
          streamPrefixes: sealedStreamPrefixes,
          limit: 10,
          recordedHashes,
        });
        expect(page.events.map((event) => event.hash)).toEqual(expected);
      }
    } finally {
      await latin1Store.close();
      await latin1.drop();
    }
  });
});
