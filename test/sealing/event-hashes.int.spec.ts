/**
 * The PostgreSQL store records each event's hash, computed in SQL, as it is written (what sealing
 * reads), and hands verification each range's stored bytes to hash itself: both must be byte for
 * byte the hashes `eventHash` gives over what any reader gets back, on awkward content too, or
 * every digest sealed by one path would fail verification by the other. Hashing in the reader (for
 * stores without either) must page through the same events identically.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callStreamName, sealedStreamPrefixes } from '../../src/archive/streams.ts';
import {
  formatPosition,
  type EventStore,
  type GlobalPosition,
  type HashedEvent,
  type StoredEventBytes,
  type StoredEventRangeOptions,
} from '../../src/event-store/event-store.ts';
import {
  openPostgresEventStore,
  type PostgresEventStore,
} from '../../src/event-store/postgres/postgres-event-store.ts';
import { eventHash, storedEventHashText } from '../../src/sealing/event-hash.ts';
import { digestType, sealHashedEvents } from '../../src/sealing/digest.ts';
import { hashedEventsAfter, readHashPage } from '../../src/sealing/event-hashes.ts';
import { columnsOfHashedEvents } from '../../src/sealing/hashed-columns.ts';
import { hashedEventsOf } from '../support/hashed-events.ts';
import { StoredRangeCheck } from '../../src/sealing/leaf-table.ts';
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

/** The same store, with neither faster path: the reader hashes what `readAll` returns. */
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
  ['data larger than the first hashing buffer', { transcript: 'word '.repeat(40_000) }, {}],
  ['large data', { transcript: 'word '.repeat(400_000) }, { size: 'large' }],
  ['binary-ish bytes', { bytes: String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i)) }, {}],
];

/** What `readStoredEvents` gives for a range: each event's place and its hash computed here. */
const storedHashes = async (eventStore: PostgresEventStore, options: StoredEventRangeOptions) => {
  const seen: { position: GlobalPosition; streamName: string; revision: bigint; hash: string }[] = [];
  const count = await eventStore.readStoredEvents(options, (event: StoredEventBytes) => {
    const { bytes } = event;
    seen.push({
      position: {
        commit: bytes.readBigUInt64BE(event.commit),
        prepare: bytes.readBigUInt64BE(event.prepare),
      },
      streamName: bytes.toString('utf8', event.streamNameStart, event.streamNameEnd),
      revision: bytes.readBigUInt64BE(event.revision),
      hash: Buffer.from(storedEventHashText(event), 'latin1').toString('hex'),
    });
  });
  expect(count).toBe(seen.length);
  return seen;
};

const placesAndHashes = (events: readonly HashedEvent[]) =>
  events.map(({ position, streamName, revision, hash }) => ({ position, streamName, revision, hash }));

describe('event hashes recorded by PostgreSQL and computed from its stored bytes', () => {
  beforeAll(async () => {
    for (const [label, data, metadata] of awkwardData) {
      const result = await store.append(
        callStreamName(`hashes-${label.replaceAll(' ', '-')}-ë-${randomUUID()}`),
        [{ id: randomUUID().toUpperCase(), type: `status-update ${label}`, data, metadata }],
        'no-stream',
      );
      expect(result.outcome).toBe('appended');
    }
    // Text no JSON.stringify writes: whitespace, escaped non-ASCII, repeated keys, kept as stored;
    // two events in one stream whose name an array's text form must quote and escape.
    const rawStream = callStreamName(`hashes-raw "NULL", {x} \\ ${randomUUID()}`);
    await pool.query(
      `INSERT INTO event_store.events (stream_name, revision, event_id, event_type, data, metadata)
       VALUES ($1, 0, $2, 'status-update', $3, $4)`,
      [rawStream, randomUUID(), '{ "a" : 1,\n\t"a": "\\u00e9\\ud83d\\ude00", "b": [ ] }', '  {}  '],
    );
    const second = await store.append(
      rawStream,
      [{ id: randomUUID(), type: 'status-update', data: {}, metadata: {} }],
      0n,
    );
    expect(second.outcome).toBe('appended');
    // An event outside the sealed prefixes, which neither path may yield.
    await store.append(
      `not-sealed-${randomUUID()}`,
      [{ id: randomUUID(), type: 'other', data: {}, metadata: {} }],
      'no-stream',
    );
  });

  it('equal the reference encoding over the events as read back, for every awkward case', async () => {
    const expected = await referenceHashes();
    expect(expected).toHaveLength(awkwardData.length + 2);
    const page = await store.readEventHashes({ streamPrefixes: sealedStreamPrefixes, limit: 1_000 });
    expect(hashedEventsOf(page.events)).toEqual(expected);
    expect(page.reachedEnd).toBe(true);
    const stored = await storedHashes(store, {
      streamPrefixes: sealedStreamPrefixes,
      last: expected.at(-1)!.position,
    });
    expect(stored).toEqual(placesAndHashes(expected));
  });

  it('read a range of stored bytes exactly: its bounds, its prefixes, nothing after it', async () => {
    const expected = placesAndHashes(await referenceHashes());
    const range = (after: number | undefined, last: number) =>
      storedHashes(store, {
        streamPrefixes: sealedStreamPrefixes,
        last: expected[last]!.position,
        ...(after === undefined ? {} : { after: expected[after]!.position }),
      });
    expect(await range(1, 3)).toEqual(expected.slice(2, 4));
    expect(await range(2, 2)).toEqual([]);
    expect(await range(undefined, 0)).toEqual(expected.slice(0, 1));
    // The event outside the sealed prefixes is after all of these: a range over it yields nothing.
    const head = (
      await pool.query<{ head: string }>('SELECT max(position)::text AS head FROM event_store.events')
    ).rows[0]!.head;
    expect(
      await storedHashes(store, {
        streamPrefixes: sealedStreamPrefixes,
        after: expected.at(-1)!.position,
        last: { commit: BigInt(head), prepare: BigInt(head) },
      }),
    ).toEqual([]);
  });

  it('page the same way whichever path hashes them, at every page boundary', async () => {
    const expected = await referenceHashes();
    expect(await collect(hashedEventsAfter(store, undefined, sealedStreamPrefixes))).toEqual(expected);
    expect(
      await collect(hashedEventsAfter(withoutSqlHashes(store), undefined, sealedStreamPrefixes)),
    ).toEqual(expected);

    for (const eventStore of [store, withoutSqlHashes(store)]) {
      for (const source of ['recorded', 'computed'] as const) {
        for (let start = 0; start < expected.length; start += 1) {
          const after: GlobalPosition = expected[start]!.position;
          const pageOfTwo = await readHashPage(eventStore, after, sealedStreamPrefixes, source, 2);
          expect(hashedEventsOf(pageOfTwo.events)).toEqual(expected.slice(start + 1, start + 3));
        }
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
    const recorded = await store.readEventHashes({ streamPrefixes: sealedStreamPrefixes, limit: 1_000 });
    expect(hashedEventsOf(recorded.events)).toEqual(expected);
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
    const recorded = await store.readEventHashes({ streamPrefixes: sealedStreamPrefixes, limit: 1_000 });
    expect(hashedEventsOf(recorded.events)).toEqual(await referenceHashes());
  });

  it('give sealing the hash as written, and verification the hash of what is stored now', async () => {
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
    const recorded = await store.readEventHashes({ streamPrefixes: sealedStreamPrefixes, limit: 1_000 });
    expect(hashedEventsOf(recorded.events).find((event) => event.streamName === stream)).toEqual(asWritten);
    expect((await collect(hashedEventsAfter(store, undefined, sealedStreamPrefixes))).at(-1)).toEqual(
      nowStored,
    );
    const stored = await storedHashes(store, {
      streamPrefixes: sealedStreamPrefixes,
      last: nowStored!.position,
    });
    expect(stored.at(-1)).toEqual(placesAndHashes([nowStored!])[0]);
  });

  it('check a range against the leaf table of its digest, and tell a changed one apart', async () => {
    const events = await referenceHashes();
    const checkOf = async (
      after: GlobalPosition | undefined,
      last: GlobalPosition,
      from: number,
      to: number,
    ) => {
      const check = new StoredRangeCheck(columnsOfHashedEvents(events.slice(from, to)));
      await store.readStoredEvents(
        { streamPrefixes: sealedStreamPrefixes, last, ...(after ? { after } : {}) },
        check.visit,
      );
      return check.matches;
    };
    const lastIndex = events.length - 1;
    expect(await checkOf(undefined, events[lastIndex]!.position, 0, events.length)).toBe(true);
    expect(await checkOf(events[1]!.position, events[3]!.position, 2, 4)).toBe(true);
    expect(await checkOf(events[2]!.position, events[2]!.position, 0, 0)).toBe(true);
    // One event more, or one fewer, than was sealed there.
    expect(await checkOf(events[1]!.position, events[3]!.position, 2, 3)).toBe(false);
    expect(await checkOf(events[1]!.position, events[3]!.position, 1, 4)).toBe(false);
    // The same events sealed at other places.
    expect(await checkOf(events[1]!.position, events[3]!.position, 3, 5)).toBe(false);

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
    expect(await checkOf(first!.position, second!.position, 1, 2)).toBe(false);
    const nowStored = await referenceHashes();
    expect(nowStored[1]!.hash).not.toBe(second!.hash);
    const check = new StoredRangeCheck(columnsOfHashedEvents(nowStored.slice(1, 2)));
    await store.readStoredEvents(
      { streamPrefixes: sealedStreamPrefixes, after: first!.position, last: second!.position },
      check.visit,
    );
    expect(check.matches).toBe(true);
  });

  it('verify an intact range in one pass over its stored bytes, and read only a changed range event by event', async () => {
    const events = await referenceHashes();
    const key = generateSigningKey();
    const firstDigest = sealHashedEvents(
      columnsOfHashedEvents(events.slice(0, 3)),
      undefined,
      key,
      new Date(),
    );
    const secondDigest = sealHashedEvents(
      columnsOfHashedEvents(events.slice(3)),
      firstDigest,
      key,
      new Date(),
    );
    const calls = { storedRanges: 0, hashPages: 0, recordedHashPages: 0 };
    const counted: EventStore = {
      ...withoutSqlHashes(store),
      readAll: (options) => {
        calls.hashPages += 1;
        return store.readAll(options);
      },
      readEventHashes: (options) => {
        calls.recordedHashPages += 1;
        return store.readEventHashes(options);
      },
      readStoredEvents: (options, visit) => {
        calls.storedRanges += 1;
        return store.readStoredEvents(options, visit);
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
    // The one page read in full: the unsealed tail. Never the hashes the store recorded.
    expect(calls).toEqual({ storedRanges: 2, hashPages: 1, recordedHashPages: 0 });

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
    calls.storedRanges = 0;
    calls.hashPages = 0;
    const changed = await verify();
    expect(changed.findings).toEqual([
      expect.objectContaining({ kind: 'modified', digest: 1, position: formatPosition(changedAt.position) }),
    ]);
    // The changed range again, then the tail.
    expect(calls).toEqual({ storedRanges: 2, hashPages: 2, recordedHashPages: 0 });
  });

  it('refuse a stored range without its end, naming it', async () => {
    await expect(
      store.readStoredEvents(
        { streamPrefixes: sealedStreamPrefixes } as unknown as StoredEventRangeOptions,
        () => {},
      ),
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
      const page = await latin1Store.readEventHashes({ streamPrefixes: sealedStreamPrefixes, limit: 10 });
      expect(hashedEventsOf(page.events).map((event) => event.hash)).toEqual(expected);
      const stored = await storedHashes(latin1Store, {
        streamPrefixes: sealedStreamPrefixes,
        last: hashedEventsOf(page.events)[0]!.position,
      });
      expect(stored.map((event) => event.hash)).toEqual(expected);
    } finally {
      await latin1Store.close();
      await latin1.drop();
    }
  });
});

describe('reading a range of stored events takes as long as the range needs, while the store keeps answering', () => {
  const timeoutMs = 300;
  let shortStore: PostgresEventStore;
  let range: StoredEventRangeOptions;
  const events = 150;

  beforeAll(async () => {
    shortStore = await openPostgresEventStore(database.url, { timeoutMs });
    const stream = callStreamName(`long-range-${randomUUID()}`);
    const transcript = 'word '.repeat(12_000);
    const appended = await store.append(
      stream,
      Array.from({ length: events }, () => ({
        id: randomUUID(),
        type: 'end-of-call-report',
        data: { transcript },
        metadata: {},
      })),
      'no-stream',
    );
    if (appended.outcome !== 'appended') throw new Error('the long range was not appended');
    const positions: GlobalPosition[] = [];
    for await (const event of store.readStream(stream, {})) positions.push(event.position);
    const before = await referenceHashes();
    const first = before.findIndex((event) => event.streamName === stream);
    range = {
      streamPrefixes: [stream],
      last: positions.at(-1)!,
      ...(first > 0 ? { after: before[first - 1]!.position } : {}),
    };
  });

  afterAll(async () => {
    await shortStore?.close();
  });

  it('reads a range far longer than the timeout to its end when the reader is the slow side', async () => {
    let seen = 0;
    // A reader slower than the store's timeout in all (here, 5 ms per event): only waiting for the
    // store counts against that timeout.
    const count = await shortStore.readStoredEvents(range, () => {
      seen += 1;
      const until = performance.now() + 5;
      while (performance.now() < until);
    });
    expect(count).toBe(events);
    expect(seen).toBe(events);
  });

  it('gives up with an error naming the store once it stops answering', async () => {
    const blocker = await pool.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE event_store.events IN ACCESS EXCLUSIVE MODE');
      await expect(shortStore.readStoredEvents(range, () => {})).rejects.toThrow(/event store/);
    } finally {
      await blocker.query('ROLLBACK');
      blocker.release();
    }
  });
});
