/**
 * The Calls listing's Debug Info search (`debugInfo`, `ILIKE '%text%'`) goes through the trigram
 * index the read-model migrations create when PostgreSQL has `pg_trgm` (the embedded server does),
 * and still works, by scanning, where the extension cannot be created. A term that is common but
 * missing from the newest artifacts walks the calls that have an artifact, not every call. Which way a
 * search goes is PostgreSQL's estimate of the term's matches, asked once per term for a while.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listCalls } from '../../src/audit/call-queries.ts';
import { migrateReadModels, openDatabase, type Database } from '../../src/database/database.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

const seededCalls = 100_000;
const rareArtifact = (n: number) => `carrier rejected SIP 488 on trunk fra-${n}`;

/** Calls like an archive's: most ended cleanly, one in eight with a common artifact, a few rare ones. */
const seedCalls = async (database: Database, count = seededCalls): Promise<void> => {
  await database.pool.query(
    `INSERT INTO calls (call_id, assistant, last_event_at, status, outcome, debugging_artifact, event_count,
                        last_revision, last_commit_position, last_prepare_position, fold_state)
     SELECT 'call-' || n, '+4930555' || (n % 7), timestamptz '2026-01-05T00:00:00Z' + make_interval(secs => n * 10),
            'ended', 'ended',
            CASE WHEN n % 10000 = 0 THEN 'carrier rejected SIP 488 on trunk fra-' || n
                 WHEN n % 8 = 0 THEN 'tool webhook https://api.example.com/orders/' || n || ' timed out after 10000 ms' END,
            3, 2, n, n, json_build_object('caller', json_build_array(timestamptz '2026-01-05T00:00:00Z', '+4915100000' || n),
                                           'status', json_build_array(timestamptz '2026-01-05T00:00:00Z', 'status-update', 'ended', timestamptz '2026-01-05T00:00:00Z'))
     FROM generate_series(1, ${count}) AS n`,
  );
  await database.pool.query('ANALYZE calls');
};

// The statement `listCalls` sends for a Debug Info search on the first page.
const explainSearch = async (database: Database, text: string): Promise<string> => {
  const { rows } = await database.pool.query<{ 'QUERY PLAN': unknown }>(
    `EXPLAIN (FORMAT JSON)
     SELECT call_id FROM calls
     WHERE debugging_artifact ILIKE $1 AND last_event_at IS NOT NULL
     ORDER BY last_event_at DESC, call_id DESC LIMIT 51`,
    [`%${text}%`],
  );
  return JSON.stringify(rows[0]!['QUERY PLAN']);
};

const searchIds = async (database: Database, text: string): Promise<string[]> =>
  (await listCalls(database.db, { debugInfo: text }, { limit: 50, after: undefined })).calls.map(
    (call) => call.callId,
  );

/** The calls with the rare artifact, newest first. */
const rareIds = (count: number) =>
  Array.from(
    { length: Math.floor(count / 10_000) },
    (_, index) => `call-${(Math.floor(count / 10_000) - index) * 10_000}`,
  );

describe('Debug Info search', () => {
  describe('with pg_trgm', () => {
    let testDatabase: TestDatabase;
    let database: Database;
    beforeAll(async () => {
      testDatabase = await createTestDatabase('debug_info_trgm');
      database = openDatabase(testDatabase.url);
      await migrateReadModels(database);
      await seedCalls(database);
    });
    afterAll(async () => {
      await database?.close();
      await testDatabase?.drop();
    });

    it('has the trigram index', async () => {
      const { rows } = await database.pool.query<{ definition: string }>(
        `SELECT indexdef AS definition FROM pg_indexes WHERE indexname = 'calls_debugging_artifact_trgm_idx'`,
      );
      expect(rows).toHaveLength(1);
      expect(rows[0]!.definition).toMatch(/USING gin \(debugging_artifact (\w+\.)?gin_trgm_ops\)/);
    });

    it('finds a rare artifact through the index instead of scanning every call', async () => {
      const plan = await explainSearch(database, 'SIP 488');
      expect(plan).toContain('calls_debugging_artifact_trgm_idx');
      expect(plan).not.toContain('"Seq Scan"');
      expect(await searchIds(database, 'sip 488')).toEqual(rareIds(seededCalls));
      expect(await searchIds(database, rareArtifact(40_000).toUpperCase())).toEqual(['call-40000']);
    });

    it('reads only calls with an artifact for a term no recent artifact holds', async () => {
      // Common overall (about one artifact in nine) but last seen 50,000 calls ago: walking every call
      // newest first would read those 50,000 before the first match.
      const plan = await explainSearch(database, 'orders/5');
      expect(plan).not.toContain('"calls_last_event_at_idx"');
      expect(plan).not.toContain('"Seq Scan"');
      const found = await searchIds(database, 'orders/5');
      expect(found).toHaveLength(50);
      expect(found[0]).toBe('call-59992');
    });

    it('pages exactly as one query in time order would, across recent and older artifacts', async () => {
      // In time order: found among the newest artifacts, across their end, only older, everywhere.
      for (const text of ['orders/9', 'orders/8', 'orders/5', 'timed out', 'ORDERS/1']) {
        const { rows } = await database.pool.query<{ call_id: string }>(
          `SELECT call_id FROM calls WHERE debugging_artifact ILIKE $1 AND last_event_at IS NOT NULL
           ORDER BY last_event_at DESC, call_id DESC LIMIT 150`,
          [`%${text}%`],
        );
        const paged: string[] = [];
        let after: { at: Date | null; callId: string } | undefined;
        for (let page = 0; page < 3; page += 1) {
          const result = await listCalls(database.db, { debugInfo: text }, { limit: 50, after });
          paged.push(...result.calls.map((call) => call.callId));
          if (result.next === undefined) break;
          after = { at: result.next[0] === null ? null : new Date(result.next[0]), callId: result.next[1] };
        }
        expect(paged, text).toEqual(rows.map((row) => row.call_id));
      }
    });

    it("asks PostgreSQL for a term's estimate once, however many pages are read", async () => {
      let statements = 0;
      const count = () => (statements += 1);
      database.pool.on('acquire', count);
      try {
        const search = async (text: string, after?: { at: Date; callId: string }) => {
          statements = 0;
          await listCalls(database.db, { debugInfo: text }, { limit: 50, after });
          return statements;
        };
        // The first page: the estimate, then the page; the next pages and a search in other case: the page.
        expect(await search('orders/7')).toBe(2);
        expect(await search('orders/7', { at: new Date('2026-01-10T00:00:00Z'), callId: 'call-1' })).toBe(1);
        expect(await search('ORDERS/7')).toBe(1);
        expect(await search('orders/70')).toBe(2);
      } finally {
        database.pool.off('acquire', count);
      }
    });

    it('still takes % and _ literally', async () => {
      expect(await searchIds(database, '50%_of')).toEqual([]);
      expect(await searchIds(database, 'fra_40000')).toEqual([]);
      expect(await searchIds(database, 'fra-40000')).toEqual(['call-40000']);
    });
  });

  describe('where pg_trgm cannot be created', () => {
    let testDatabase: TestDatabase;
    let database: Database;
    beforeAll(async () => {
      testDatabase = await createTestDatabase('debug_info_no_trgm');
      database = openDatabase(testDatabase.url);
      // An object in the extension's way makes CREATE EXTENSION fail, as a missing extension or a
      // role without the right to create it would.
      await database.pool.query(
        `CREATE FUNCTION public.show_trgm(text) RETURNS text[] LANGUAGE sql AS 'SELECT ARRAY[$1]'`,
      );
      await migrateReadModels(database);
      await seedCalls(database, 20_000);
    });
    afterAll(async () => {
      await database?.close();
      await testDatabase?.drop();
    });

    it('migrates without the extension and the index, and the search still works', async () => {
      const extension = await database.pool.query(`SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'`);
      expect(extension.rowCount).toBe(0);
      const index = await database.pool.query(
        `SELECT 1 FROM pg_indexes WHERE indexname = 'calls_debugging_artifact_trgm_idx'`,
      );
      expect(index.rowCount).toBe(0);
      expect(await searchIds(database, 'sip 488')).toEqual(rareIds(20_000));
    });
  });
});
