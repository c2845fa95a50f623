/**
 * What the PostgreSQL adapter promises beyond the shared contract: no event skipped by subscribers
 * under concurrent appends from several processes, append-only enforced by the database itself,
 * group commit that really shares transactions yet answers only after commit, bounded failure when
 * the database is unreachable and recovery after it, and migrations safe to run concurrently.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  comparePositions,
  EventStoreUnavailableError,
  JsonText,
  type AppendResult,
  type ProposedEvent,
  type ReadStreamOptions,
  type RecordedEvent,
  type Subscription,
  type SubscriptionMessage,
} from '../../src/event-store/event-store.ts';
import {
  EventStoreMigrationError,
  openPostgresEventStore,
  type PostgresEventStore,
  type PostgresEventStoreOptions,
} from '../../src/event-store/postgres/postgres-event-store.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';

const event = (data: unknown = { note: 'test' }): ProposedEvent => ({
  id: randomUUID(),
  type: 'status-update',
  data,
  metadata: { receivedAt: new Date().toISOString() },
});

const collect = async <T>(source: AsyncIterable<T>): Promise<T[]> => {
  const items: T[] = [];
  for await (const item of source) items.push(item);
  return items;
};

/** Waits (bounded) until a session matching `which` waits for a lock `holder` holds. */
const waitUntilBlockedBy = async (holder: pg.ClientBase, which: (pid: number) => boolean = () => true) => {
  const holderPid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  await vi.waitFor(
    async () => {
      // Within a transaction the sessions are a snapshot taken at the first look: take a fresh one,
      // or a session that started since would never be seen.
      await holder.query('SELECT pg_stat_clear_snapshot()');
      const { rows } = await holder.query<{ pid: number }>(
        'SELECT pid FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))',
        [holderPid],
      );
      expect(rows.some((row) => which(row.pid))).toBe(true);
    },
    { timeout: 10_000, interval: 20 },
  );
};

const throughProxy = (url: string, port: number): string => {
  const proxied = new URL(url);
  proxied.hostname = '127.0.0.1';
  proxied.port = String(port);
  return proxied.toString();
};

describe('PostgreSQL event store', () => {
  let database: TestDatabase;
  let admin: pg.Pool;
  const stores: PostgresEventStore[] = [];

  const open = async (options: Partial<PostgresEventStoreOptions> = {}, url = database.url) => {
    const store = await openPostgresEventStore(url, { timeoutMs: 5_000, ...options });
    stores.push(store);
    return store;
  };

  beforeAll(async () => {
    database = await createTestDatabase('pg_event_store');
    admin = new pg.Pool({ connectionString: database.url, max: 4 });
    await open(); // applies the migrations once for the raw-SQL tests below
  });

  afterAll(async () => {
    await Promise.all(stores.map((store) => store.close()));
    await admin?.end();
    await database?.drop();
  });

  describe('subscribers under concurrent appends from several processes', () => {
    it('see every event exactly once, in position order, with no gap', async () => {
      const prefix = `race${randomBytes(4).toString('hex')}-`;
      // Several adapters, each with its own connections and group-commit writer, as separate
      // processes would have: their transactions interleave on the server.
      const writers = await Promise.all([open(), open(), open(), open()]);
      const subscriberStore = await open({ pollIntervalMs: 50 });
      const subscription = subscriberStore.subscribeToAll({ streamPrefixes: [prefix] });
      const received: SubscriptionMessage[] = [];
      const appended = new Set<string>();
      const total = 4 * 6 * 50;
      let resolveAll: () => void = () => {};
      const allSeen = new Promise<void>((resolve) => {
        resolveAll = resolve;
      });
      const reading = (async () => {
        let events = 0;
        for await (const message of subscription) {
          received.push(message);
          if (message.kind === 'event' && ++events >= total) resolveAll();
        }
      })();

      const appendLoops = writers.flatMap((store, writerIndex) =>
        Array.from({ length: 6 }, async (_, loop) => {
          for (let i = 0; i < 50; i++) {
            const proposed = [event({ writerIndex, loop, i })];
            // Mix private streams with streams shared by every writer, so revisions race too.
            const stream = i % 3 === 0 ? `${prefix}shared-${i % 4}` : `${prefix}w${writerIndex}-l${loop}`;
            let result: AppendResult = await store.append(stream, proposed, 'any');
            while (result.outcome !== 'appended') result = await store.append(stream, proposed, 'any');
            appended.add(proposed[0]!.id);
          }
        }),
      );
      await Promise.all(appendLoops);
      // A skipped event never arrives; give the subscriber ample time, then compare what it has.
      await Promise.race([allSeen, new Promise((resolve) => setTimeout(resolve, 15_000))]);
      await subscription.close();
      await reading;

      const seen = received.flatMap((message) => (message.kind === 'event' ? [message.event] : []));
      expect(appended.size).toBe(total);
      expect(seen).toHaveLength(total);
      expect(new Set(seen.map((e) => e.id))).toEqual(appended);
      for (let i = 1; i < seen.length; i++) {
        expect(comparePositions(seen[i - 1]!.position, seen[i]!.position)).toBe(-1);
      }
      // What the subscriber saw live is exactly what a reader sees afterwards.
      const stored = await collect(subscriberStore.readAll({ streamPrefixes: [prefix] }));
      expect(seen.map((e) => e.id)).toEqual(stored.map((e) => e.id));
      // Each stream's revisions are contiguous and follow the global order.
      const byStream = new Map<string, RecordedEvent[]>();
      for (const e of stored) byStream.set(e.streamName, [...(byStream.get(e.streamName) ?? []), e]);
      for (const events of byStream.values()) {
        expect(events.map((e) => e.revision)).toEqual(events.map((_, index) => BigInt(index)));
      }
    }, 60_000);

    it('a writer bypassing the adapter still takes a position only under the append lock', async () => {
      const holder = await admin.connect();
      const bypass = await admin.connect();
      try {
        const insert = (client: pg.PoolClient, stream: string) =>
          client.query<{ position: string }>(
            `INSERT INTO event_store.events (stream_name, revision, event_id, event_type, data, metadata)
             VALUES ($1, 0, $2, 'raw', '{}', '{}') RETURNING position`,
            [stream, randomUUID()],
          );
        await holder.query('BEGIN');
        await holder.query('SELECT pg_advisory_xact_lock(7161124095561722881)');
        const bypassPid = (await bypass.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!
          .pid;
        const blocked = insert(bypass, `raw-bypass-${randomUUID()}`);
        await waitUntilBlockedBy(holder, (pid) => pid === bypassPid);
        const first = await insert(holder, `raw-holder-${randomUUID()}`);
        await holder.query('COMMIT');
        const second = await blocked;
        // Had the bypassing insert drawn its position before waiting, it would hold the smaller one
        // while committing later: the gap a subscriber could skip.
        expect(BigInt(second.rows[0]!.position)).toBeGreaterThan(BigInt(first.rows[0]!.position));
      } finally {
        await holder.query('ROLLBACK').catch(() => {});
        holder.release();
        bypass.release();
      }
    });
  });

  describe('append-only, enforced by the database', () => {
    it.each([
      ['UPDATE', `UPDATE event_store.events SET event_type = 'tampered'`],
      ['DELETE', 'DELETE FROM event_store.events'],
      ['TRUNCATE', 'TRUNCATE event_store.events'],
      [
        'UPDATE through upsert',
        `INSERT INTO event_store.events (stream_name, revision, event_id, event_type, data, metadata)
         SELECT stream_name, revision, event_id, event_type, data, metadata FROM event_store.events LIMIT 1
         ON CONFLICT (stream_name, revision) DO UPDATE SET event_type = 'tampered'`,
      ],
    ])('refuses %s in raw SQL', async (_, sql) => {
      const store = stores[0]!;
      const stream = `immutable-${randomUUID()}`;
      const original = event({ kept: true });
      await store.append(stream, [original], 'no-stream');
      const countBefore = await admin.query<{ n: string }>('SELECT count(*) AS n FROM event_store.events');

      await expect(admin.query(sql)).rejects.toMatchObject({
        code: '42501',
        message: expect.stringContaining('append-only') as unknown,
      });

      const countAfter = await admin.query<{ n: string }>('SELECT count(*) AS n FROM event_store.events');
      expect(countAfter.rows[0]!.n).toBe(countBefore.rows[0]!.n);
      const [stored] = await collect(store.readStream(stream));
      expect(stored).toMatchObject({ id: original.id, type: 'status-update', data: { kept: true } });
      const tampered = await admin.query(`SELECT 1 FROM event_store.events WHERE event_type = 'tampered'`);
      expect(tampered.rowCount).toBe(0);
    });
  });

  describe('group commit', () => {
    const transactionsOf = async (ids: readonly string[]): Promise<number> => {
      const { rows } = await admin.query<{ n: string }>(
        'SELECT count(DISTINCT xmin::text) AS n FROM event_store.events WHERE event_id = ANY($1::uuid[])',
        [ids],
      );
      return Number(rows[0]!.n);
    };

    it('shares transactions between concurrent appends and answers each only after its commit', async () => {
      const store = await open();
      const prefix = `gc-${randomBytes(4).toString('hex')}-`;
      // A pool queues the 300 checks (one client must not run queries concurrently).
      const observer = new pg.Pool({ connectionString: database.url, max: 2 });
      try {
        const proposed = Array.from({ length: 300 }, () => event());
        const visibleOnAnswer: boolean[] = [];
        const statsBefore = store.appendStats;
        await Promise.all(
          proposed.map(async (p, index) => {
            const result = await store.append(`${prefix}${index}`, [p], 'no-stream');
            expect(result.outcome).toBe('appended');
            // The answer must come after the commit: another session sees the event at once.
            const seen = await observer.query('SELECT 1 FROM event_store.events WHERE event_id = $1', [p.id]);
            visibleOnAnswer.push(seen.rowCount === 1);
          }),
        );
        const stats = store.appendStats;
        const transactions = await transactionsOf(proposed.map((p) => p.id));
        expect(visibleOnAnswer).toEqual(proposed.map(() => true));
        expect(transactions).toBeLessThan(proposed.length / 5);
        expect(stats.appends - statsBefore.appends).toBe(300);
        expect(stats.transactions - statsBefore.transactions).toBe(transactions);
      } finally {
        await observer.end();
      }
    });

    it('does not answer while the transaction cannot commit', async () => {
      const store = await open();
      // The writer's connection is opened first, so what waits below is the append's statement.
      await store.append(`warm-${randomUUID()}`, [event()], 'no-stream');
      const holder = await admin.connect();
      try {
        await holder.query('BEGIN');
        await holder.query('SELECT pg_advisory_xact_lock(7161124095561722881)');
        let answered = false;
        const proposed = event();
        const appending = store.append(`held-${randomUUID()}`, [proposed], 'no-stream').then((result) => {
          answered = true;
          return result;
        });
        // The store's writer waits for the holder: only then does "not answered yet" mean anything.
        await waitUntilBlockedBy(holder);
        expect(answered).toBe(false);
        await holder.query('COMMIT');
        await expect(appending).resolves.toMatchObject({ outcome: 'appended', nextRevision: 0n });
      } finally {
        await holder.query('ROLLBACK').catch(() => {});
        holder.release();
      }
    });

    it('decides each append of a batch on its own', async () => {
      const store = await open();
      const prefix = `gc-mixed-${randomBytes(4).toString('hex')}-`;
      await store.append(`${prefix}existing`, [event()], 'no-stream');
      const [good, wrong, againGood, sameStream, huge] = [event(), event(), event(), event(), event()];
      const results = await Promise.allSettled([
        store.append(`${prefix}a`, [good], 'no-stream'),
        store.append(`${prefix}existing`, [wrong], 5n),
        store.append(`${prefix}b`, [againGood], 'no-stream'),
        store.append(`${prefix}a`, [sameStream], 0n), // sees the first append of this very batch
        // A stream name too long for the index: the database refuses this one append only.
        store.append(`${prefix}${randomBytes(8_000).toString('base64')}`, [huge], 'no-stream'),
      ]);
      expect(results.map((r) => r.status)).toEqual([
        'fulfilled',
        'fulfilled',
        'fulfilled',
        'fulfilled',
        'rejected',
      ]);
      const values = results.map((r) => (r.status === 'fulfilled' ? r.value : undefined));
      expect(values[0]).toMatchObject({ outcome: 'appended', nextRevision: 0n });
      expect(values[1]).toEqual({ outcome: 'wrong-expected-version', actualRevision: 0n });
      expect(values[2]).toMatchObject({ outcome: 'appended', nextRevision: 0n });
      expect(values[3]).toMatchObject({ outcome: 'appended', nextRevision: 1n });
      expect((await collect(store.readStream(`${prefix}a`))).map((e) => e.id)).toEqual([
        good.id,
        sameStream.id,
      ]);
      expect(await collect(store.readStream(`${prefix}existing`))).toHaveLength(1);
    });

    it('writes a batch of exact appends in one statement only where every head is as expected', async () => {
      const prefix = `gc-heads-${randomBytes(4).toString('hex')}-`;
      const store = await open();
      await store.append(`${prefix}a`, [event()], 'no-stream');
      const appendAtHeads = (heads: [string, number][], rows: [string, number][]) =>
        admin.query<{ appended_position: string; appended_stream: string; appended_revision: string }>(
          `SELECT * FROM event_store.append_at_expected_heads($1, $2, $3, $4, $5, $6, $7, $8)`,
          [
            heads.map(([stream]) => stream),
            heads.map(([, head]) => head),
            rows.map(([stream]) => stream),
            rows.map(([, revision]) => revision),
            rows.map(() => randomUUID()),
            rows.map(() => 'status-update'),
            JSON.stringify(rows.map((_, index) => ({ index }))),
            JSON.stringify(rows.map(() => ({}))),
          ],
        );
      const countIn = async (stream: string) =>
        Number(
          (
            await admin.query<{ n: string }>(
              'SELECT count(*) AS n FROM event_store.events WHERE stream_name = $1',
              [stream],
            )
          ).rows[0]!.n,
        );

      // One head elsewhere (a's is 0, not -1): nothing at all is written, and no row says so.
      const refused = await appendAtHeads(
        [
          [`${prefix}a`, -1],
          [`${prefix}b`, -1],
        ],
        [
          [`${prefix}a`, 0],
          [`${prefix}b`, 0],
        ],
      );
      expect(refused.rows).toEqual([]);
      expect([await countIn(`${prefix}a`), await countIn(`${prefix}b`)]).toEqual([1, 0]);

      const written = await appendAtHeads(
        [
          [`${prefix}a`, 0],
          [`${prefix}b`, -1],
        ],
        [
          [`${prefix}b`, 0],
          [`${prefix}a`, 1],
          [`${prefix}b`, 1],
        ],
      );
      expect(written.rows.map((row) => [row.appended_stream, row.appended_revision])).toEqual([
        [`${prefix}b`, '0'],
        [`${prefix}a`, '1'],
        [`${prefix}b`, '1'],
      ]);
      const positions = written.rows.map((row) => BigInt(row.appended_position));
      expect(positions).toEqual([...positions].sort((x, y) => (x < y ? -1 : 1)));
      expect(new Set(positions).size).toBe(3);
      // Through the adapter, the same holds: the store's own view and the database's agree.
      expect((await collect(store.readStream(`${prefix}b`))).map((e) => e.data)).toEqual([
        { index: 0 },
        { index: 2 },
      ]);
    });

    /**
     * Starts `append` while another session holds the append lock, then has that session create the
     * stream (revision 0) and commit: the append began before the stream existed, and runs after it.
     */
    const appendWhileStreamIsCreated = async (
      stream: string,
      append: (store: PostgresEventStore) => Promise<AppendResult>,
    ): Promise<{ store: PostgresEventStore; result: AppendResult }> => {
      const store = await open();
      await store.append(`warm-${randomUUID()}`, [event()], 'no-stream');
      const holder = await admin.connect();
      try {
        await holder.query('BEGIN');
        await holder.query('SELECT pg_advisory_xact_lock(7161124095561722881)');
        const appending = append(store);
        await waitUntilBlockedBy(holder);
        await holder.query(
          `INSERT INTO event_store.events (stream_name, revision, event_id, event_type, data, metadata)
           VALUES ($1, 0, $2, 'status-update', '{}', '{}')`,
          [stream, randomUUID()],
        );
        await holder.query('COMMIT');
        return { store, result: await appending };
      } finally {
        holder.release();
      }
    };

    it('judges an exact append by the head left by whoever held the lock before it', async () => {
      const stream = `gc-raced-${randomUUID()}`;
      const { store, result } = await appendWhileStreamIsCreated(stream, (writer) =>
        writer.append(stream, [event()], 'no-stream'),
      );
      expect(result).toEqual({ outcome: 'wrong-expected-version', actualRevision: 0n });
      expect(await collect(store.readStream(stream))).toHaveLength(1);
    });

    it('appends after a revision committed while it waited for the lock', async () => {
      const stream = `gc-follows-${randomUUID()}`;
      const proposed = event();
      // Expects revision 0, which only exists once the holder commits, after the append began.
      const { store, result } = await appendWhileStreamIsCreated(stream, (writer) =>
        writer.append(stream, [proposed], 0n),
      );
      expect(result).toMatchObject({ outcome: 'appended', nextRevision: 1n, written: true });
      const stored = await collect(store.readStream(stream));
      expect(stored.map((e) => e.revision)).toEqual([0n, 1n]);
      expect(stored[1]!.id).toBe(proposed.id);
      expect(stored[1]!.position.commit).toBeGreaterThan(stored[0]!.position.commit);
    });

    it('retries an append whose connection is lost mid-statement once, and stores it once', async () => {
      const target = new URL(database.url);
      const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
      const holder = await admin.connect();
      try {
        const store = await open({ timeoutMs: 20_000 }, throughProxy(database.url, proxy.port));
        await store.append(`warm-${randomUUID()}`, [event()], 'no-stream');
        const stream = `gc-cut-${randomUUID()}`;
        const proposed = event();
        await holder.query('BEGIN');
        await holder.query('SELECT pg_advisory_xact_lock(7161124095561722881)');
        const appending = store.append(stream, [proposed], 'no-stream');
        await waitUntilBlockedBy(holder);
        // The connection goes while its statement waits for the lock; the server may still run and
        // commit it once the lock is free, with nobody left to tell.
        const cutAt = (await holder.query<{ at: Date }>('SELECT clock_timestamp() AS at')).rows[0]!.at;
        proxy.cutOpenConnections();
        // The retry, on a connection opened after the cut, waits for the lock in its turn. (Asked
        // outside the holder's transaction, which would see the sessions as they were when it first
        // looked.)
        const holderPid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!
          .pid;
        await vi.waitFor(
          async () => {
            const { rows } = await admin.query(
              `SELECT pid FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid)) AND backend_start > $2`,
              [holderPid, cutAt],
            );
            expect(rows).toHaveLength(1);
          },
          { timeout: 10_000, interval: 20 },
        );
        await holder.query('COMMIT');
        expect(await appending).toMatchObject({ outcome: 'appended', nextRevision: 0n });
        expect((await collect(store.readStream(stream))).map((e) => e.id)).toEqual([proposed.id]);
      } finally {
        await holder.query('ROLLBACK').catch(() => {});
        holder.release();
        await proxy.close();
      }
    });

    it('answers a retry within the same batch as idempotent', async () => {
      const store = await open();
      const stream = `gc-retry-${randomUUID()}`;
      const proposed = [event(), event()];
      const [first, retry] = await Promise.all([
        store.append(stream, proposed, 'no-stream'),
        store.append(stream, proposed, 'no-stream'),
      ]);
      expect(retry).toEqual({ ...first, written: false });
      expect(first).toMatchObject({ written: true });
      expect(await collect(store.readStream(stream))).toHaveLength(2);
    });
  });

  describe('when the database is unreachable', () => {
    let proxy: TcpProxy;
    let store: PostgresEventStore;
    const timeoutMs = 1_000;

    beforeAll(async () => {
      const target = new URL(database.url);
      proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
      store = await open({ timeoutMs, pollIntervalMs: 100 }, throughProxy(database.url, proxy.port));
    });

    afterEach(async () => {
      await proxy.comeBack();
    });

    afterAll(async () => {
      await proxy.close();
    });

    // Without its bound an operation on a silent database would never settle: the test's own
    // timeout is what catches that, not a wall-clock assertion a loaded machine could break.
    const expectUnavailable = async (operation: Promise<unknown>) => {
      await expect(operation).rejects.toBeInstanceOf(EventStoreUnavailableError);
    };

    it('fails fast with EventStoreUnavailableError when connections are refused, then recovers', async () => {
      await store.append(`down-${randomUUID()}`, [event()], 'no-stream'); // a pooled connection exists
      await proxy.goDown();
      await expectUnavailable(store.append(`down-${randomUUID()}`, [event()], 'no-stream'));
      await expectUnavailable(store.ping());
      await expectUnavailable(collect(store.readAll({ streamPrefixes: ['down-'] })));

      await proxy.comeBack();
      const stream = `down-${randomUUID()}`;
      await expect(store.append(stream, [event()], 'no-stream')).resolves.toMatchObject({
        outcome: 'appended',
      });
      await expect(store.ping()).resolves.toBeUndefined();
      expect(await collect(store.readStream(stream))).toHaveLength(1);
    });

    it('gives up within the bound when the database stops answering, then recovers', async () => {
      await store.append(`hole-${randomUUID()}`, [event()], 'no-stream');
      proxy.blackHole();
      const appends = Array.from({ length: 5 }, () =>
        store.append(`hole-${randomUUID()}`, [event()], 'no-stream'),
      );
      await Promise.all(
        appends.map((append) => expect(append).rejects.toThrow(/did not answer within \d+ ms/)),
      );
      await expectUnavailable(store.ping());

      await proxy.comeBack();
      const stream = `hole-${randomUUID()}`;
      await expect(store.append(stream, [event()], 'no-stream')).resolves.toMatchObject({
        outcome: 'appended',
      });
      expect(await collect(store.readStream(stream))).toHaveLength(1);
    });

    it('ends a live subscription by throwing when its connection is lost', async () => {
      const prefix = `sub-lost-${randomBytes(4).toString('hex')}-`;
      const subscription: Subscription = store.subscribeToAll({ streamPrefixes: [prefix] });
      const iterator = subscription[Symbol.asyncIterator]();
      try {
        for (;;) {
          const next = await iterator.next();
          if (next.done || next.value.kind === 'caught-up') break;
        }
        await proxy.goDown();
        await expect(iterator.next()).rejects.toBeInstanceOf(EventStoreUnavailableError);
      } finally {
        await subscription.close();
      }
    });

    it('opens only within the bound', async () => {
      await proxy.goDown();
      await expect(
        openPostgresEventStore(throughProxy(database.url, proxy.port), { timeoutMs }),
      ).rejects.toBeInstanceOf(EventStoreUnavailableError);
    });
  });

  describe('migrations', () => {
    it('are applied once when several processes open a fresh database at the same time', async () => {
      const fresh = await createTestDatabase('pg_event_store_migrate');
      try {
        const opened = await Promise.all(
          Array.from({ length: 4 }, () => openPostgresEventStore(fresh.url, { timeoutMs: 5_000 })),
        );
        await Promise.all(opened.map((store) => store.close()));
        const client = new pg.Client(fresh.url);
        await client.connect();
        try {
          const { rows } = await client.query<{ name: string }>(
            'SELECT name FROM event_store.schema_migrations',
          );
          expect(rows.map((row) => row.name)).toEqual([
            '0000_init.sql',
            '0001_event_hash.sql',
            '0002_event_hash_utf8_lengths.sql',
            '0003_append_at_expected_heads.sql',
          ]);
          await client.query(`UPDATE event_store.schema_migrations SET checksum = 'edited'`);
          await expect(openPostgresEventStore(fresh.url, { timeoutMs: 5_000 })).rejects.toThrow(
            new EventStoreMigrationError(
              'event-store migration 0000_init.sql was changed after it was applied; restore the original file',
            ),
          );
          await client.query(
            `INSERT INTO event_store.schema_migrations (name, checksum) VALUES ('9999_future.sql', 'x')`,
          );
          await expect(openPostgresEventStore(fresh.url, { timeoutMs: 5_000 })).rejects.toBeInstanceOf(
            EventStoreMigrationError,
          );
        } finally {
          await client.end();
        }
      } finally {
        await fresh.drop();
      }
    });
  });

  describe('what it stores', () => {
    it('keeps JSON strings jsonb would refuse, and never loses position precision', async () => {
      const store = stores[0]!;
      const stream = `exact-${randomUUID()}`;
      const data = { raw: 'nul \u0000 and a lone surrogate \ud800 stay', big: '18446744073709551615' };
      const result = await store.append(stream, [event(data)], 'no-stream');
      const [stored] = await collect(store.readStream(stream));
      expect(stored!.data).toEqual(data);
      expect(result.outcome === 'appended' && typeof result.position.commit).toBe('bigint');
      expect(stored!.position.commit).toBe(stored!.position.prepare);
    });

    it('reads a stream backwards, from its end or a revision, a page at a time', async () => {
      const store = await open({ pageSize: 2 });
      const stream = `backwards-${randomUUID()}`;
      await store.append(
        stream,
        [0, 1, 2, 3, 4].map((n) => event({ n })),
        'no-stream',
      );
      const numbers = async (options: ReadStreamOptions) =>
        (await collect(store.readStream(stream, options))).map((e) => e.revision);
      expect(await numbers({ direction: 'backwards' })).toEqual([4n, 3n, 2n, 1n, 0n]);
      expect(await numbers({ direction: 'backwards', maxCount: 1 })).toEqual([4n]);
      expect(await numbers({ direction: 'backwards', fromRevision: 2n })).toEqual([2n, 1n, 0n]);
      expect(await numbers({ direction: 'backwards', fromRevision: 0n })).toEqual([0n]);
      // From past the end, or past what a bigint holds: from the end.
      expect(await numbers({ direction: 'backwards', fromRevision: 2n ** 64n, maxCount: 2 })).toEqual([
        4n,
        3n,
      ]);
      expect(await numbers({ direction: 'forwards', fromRevision: 3n })).toEqual([3n, 4n]);
      expect(await collect(store.readStream(`absent-${randomUUID()}`, { direction: 'backwards' }))).toEqual(
        [],
      );
      await expect(
        collect(store.readStream(stream, { direction: 'sideways' as 'forwards' })),
      ).rejects.toThrow(/direction/);
    });

    it('stores each event as given, whatever its names and payload hold, in batches', async () => {
      const store = stores[0]!;
      // Characters an array literal must quote or escape, in the stream names and types too.
      const stream = `awkward "quoted" \\ {a,b} NULL, \u00e9\u{1f4de} ${randomUUID()}`;
      const big = { body: 'x\\"\u00e9\u{1f600}'.repeat(400_000), tail: '],[' };
      const payloads: unknown[] = [
        { escapes: 'nul \u0000, lone surrogates \ud800 \udfff, line separator \u2028, "quotes" \\ back' },
        ['],[', '{"not":"an object"}', ',', '\\', '\n\t\r\b\f'],
        'a string on its own',
        42.5,
        null,
        true,
        { emoji: '\u{1f4de}\u{1f600}', accents: 'Żółć, naïve, 東京' },
        big,
        {},
        [],
      ];
      const events = payloads.map((data, index) => ({
        ...event(data),
        type: [`status-update`, `type "${index}" {x,y}`, `type \\ ${index} NULL`, `type, ${index}`][
          index % 4
        ]!,
        metadata: { index, data },
      }));
      // Several appends of one batch, the large one among them, so they share one insert.
      const appended = await Promise.all([
        store.append(stream, events.slice(0, 4), 'no-stream'),
        store.append(`${stream}-b`, events.slice(4, 8), 'no-stream'),
        store.append(`${stream}-c`, events.slice(8), 'no-stream'),
      ]);
      expect(appended.map((result) => result.outcome)).toEqual(['appended', 'appended', 'appended']);
      const { rows } = await admin.query<{ data: string; metadata: string }>(
        `SELECT data::text AS data, metadata::text AS metadata FROM event_store.events
          WHERE stream_name IN ($1, $2, $3) ORDER BY position`,
        [stream, `${stream}-b`, `${stream}-c`],
      );
      expect(rows.map((row) => row.data)).toEqual(events.map((e) => JSON.stringify(e.data)));
      expect(rows.map((row) => row.metadata)).toEqual(events.map((e) => JSON.stringify(e.metadata)));
      const read = [
        ...(await collect(store.readStream(stream))),
        ...(await collect(store.readStream(`${stream}-b`))),
        ...(await collect(store.readStream(`${stream}-c`))),
      ];
      expect(read.map((e) => e.data)).toEqual(payloads);
      expect(read.map((e) => e.id)).toEqual(events.map((e) => e.id));
      expect(read.map((e) => e.type)).toEqual(events.map((e) => e.type));
      expect(read.map((e) => e.streamName)).toEqual([
        ...Array<string>(4).fill(stream),
        ...Array<string>(4).fill(`${stream}-b`),
        ...Array<string>(2).fill(`${stream}-c`),
      ]);
    });

    it('refuses malformed input, naming the field, before writing anything', async () => {
      const store = stores[0]!;
      const stream = `invalid-${randomUUID()}`;
      await expect(store.append(stream, [{ ...event(), id: 'not-a-uuid' }], 'no-stream')).rejects.toThrow(
        'events[0].id must be a UUID',
      );
      await expect(store.append(stream, [], 'no-stream')).rejects.toThrow('events must be a non-empty array');
      await expect(store.append(stream, [event()], -1n)).rejects.toThrow('expectedRevision');
      await expect(store.append('', [event()], 'any')).rejects.toThrow('streamName');
      // Text given as already serialized cannot hold what PostgreSQL's text refuses.
      await expect(
        store.append(stream, [{ ...event(), metadata: new JsonText('{"a":"\u0000"}') }], 'no-stream'),
      ).rejects.toThrow('events[0].metadata must be JSON text without NUL characters');
      await expect(collect(store.readAll({ streamPrefixes: [] }))).rejects.toThrow('streamPrefixes');
      await expect(collect(store.readAll({ streamPrefixes: [''] }))).rejects.toThrow('streamPrefixes[0]');
      expect(await collect(store.readStream(stream))).toEqual([]);
    });
  });
});
