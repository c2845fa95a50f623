/**
 * Migrations when several processes start at once on a database that lacks the newest migration:
 * each migration is applied exactly once, whichever process gets there first, and the others wait
 * for it and then find nothing left to do.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import {
  migrateReadModels,
  openDatabase,
  ReadModelMigrationError,
  type Database,
} from '../../src/database/database.ts';
import { migrationsFolder } from '../../src/migrations/folder.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

/** A copy of the committed read-model migrations plus one more, as the next release would ship it. */
const folderWithNewMigration = async (): Promise<string> => {
  const folder = await mkdtemp(path.join(tmpdir(), 'calltrail-migrations-'));
  await cp(migrationsFolder('read-models'), folder, { recursive: true });
  const journalFile = path.join(folder, 'meta', '_journal.json');
  const journal = JSON.parse(await readFile(journalFile, 'utf8')) as {
    entries: { idx: number; version: string; when: number; tag: string; breakpoints: boolean }[];
  };
  const last = journal.entries.at(-1)!;
  journal.entries.push({ ...last, idx: last.idx + 1, when: last.when + 1, tag: '0001_calls_note' });
  await writeFile(journalFile, JSON.stringify(journal, null, 2));
  await writeFile(path.join(folder, '0001_calls_note.sql'), 'ALTER TABLE "calls" ADD COLUMN "note" text;');
  return folder;
};

describe('read-model migrations started by two processes at once', () => {
  let database: TestDatabase;
  let folder: string;
  const opened: Database[] = [];

  beforeEach(async () => {
    database = await createTestDatabase('migrate_race');
    folder = await folderWithNewMigration();
  });

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((each) => each.close()));
    await rm(folder, { recursive: true, force: true });
    await database.drop();
  });

  const open = (): Database => {
    const each = openDatabase(database.url, { max: 2 });
    opened.push(each);
    return each;
  };

  it('applies the new migration once and both processes start', async () => {
    await migrateReadModels(open());
    const [first, second] = [open(), open()];
    // Both connected before the table is held: a session that starts meanwhile waits at start-up.
    await Promise.all([first.pool.query('SELECT 1'), second.pool.query('SELECT 1')]);
    const holder = new pg.Client(database.url);
    await holder.connect();
    try {
      // Holding the table the new migration alters makes both processes reach the migration
      // before either can finish it, however the scheduler interleaves them.
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE calls IN ACCESS EXCLUSIVE MODE');
      const both = Promise.allSettled([
        migrateReadModels(first, { folder }),
        migrateReadModels(second, { folder }),
      ]);
      await vi.waitFor(
        async () => {
          // A fresh look each time: within the transaction the sessions are otherwise a snapshot.
          await holder.query('SELECT pg_stat_clear_snapshot()');
          const { rows } = await holder.query<{ waiting: number }>(
            `SELECT count(*)::int AS waiting FROM pg_stat_activity
              WHERE datname = current_database() AND cardinality(pg_blocking_pids(pid)) > 0`,
          );
          expect(rows[0]!.waiting).toBe(2);
        },
        { timeout: 10_000, interval: 20 },
      );
      await holder.query('COMMIT');
      const outcomes = await both;
      expect(
        outcomes.flatMap((outcome): unknown[] => (outcome.status === 'rejected' ? [outcome.reason] : [])),
      ).toEqual([]);
      const applied = outcomes.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value : []));
      expect(applied.flat()).toEqual(['0001_calls_note.sql']);
      const { rows } = await holder.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'calls' AND column_name = 'note'`,
      );
      expect(rows).toEqual([{ n: 1 }]);
    } finally {
      await holder.end();
    }
  });

  it('keeps the history drizzle wrote, and refuses an edited or unknown migration by name', async () => {
    const reads = open();
    await migrate(reads.db, {
      migrationsFolder: migrationsFolder('read-models'),
      migrationsSchema: 'public',
    });
    expect(await migrateReadModels(reads)).toEqual([]);
    expect(await migrateReadModels(reads, { folder })).toEqual(['0001_calls_note.sql']);

    await writeFile(
      path.join(folder, '0001_calls_note.sql'),
      'ALTER TABLE "calls" ADD COLUMN "remark" text;',
    );
    await expect(migrateReadModels(reads, { folder })).rejects.toThrow(
      new ReadModelMigrationError(
        'read-model migration 0001_calls_note.sql was changed after it was applied; restore the original file',
      ),
    );
    await expect(migrateReadModels(reads)).rejects.toThrow(
      /^the read models were migrated by a newer calltrail \(unknown migration of \d+\); upgrade calltrail$/,
    );
  });
});
