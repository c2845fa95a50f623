/**
 * The runtime role `calltrail migrate --runtime-role` sets up, on a real PostgreSQL: connected as
 * it, calltrail appends and reads events through its adapter, starts (finding the migrations
 * applied) and projects, but the database refuses it every way of rewriting the archive; and serve's
 * start-up check warns when connected as the owner, not when connected as the runtime role.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { callStreamName } from '../../src/archive/streams.ts';
import { loadConfig } from '../../src/config.ts';
import { migrateReadModels, openDatabase } from '../../src/database/database.ts';
import { migrationsFolder } from '../../src/migrations/folder.ts';
import { createMetrics } from '../../src/metrics.ts';
import { openPostgresEventStore } from '../../src/event-store/postgres/postgres-event-store.ts';
import { startProjector } from '../../src/projector/projector.ts';
import { migrateStores } from '../../src/stores/migrate.ts';
import { openStores } from '../../src/stores/open.ts';
import { reportConnectedRole, RuntimeRoleError } from '../../src/stores/runtime-role.ts';
import { statusUpdate } from '../support/call-events.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import {
  appendCallEvents,
  appendRaw,
  capturingLogger,
  deadLetters,
  newScope,
  testProjectorOptions,
  waitUntilCaughtUp,
} from '../support/projector-harness.ts';

const quietLogger = () => capturingLogger().logger;
const configFor = (databaseUrl: string) =>
  loadConfig({ CALLTRAIL_DATABASE_URL: databaseUrl, CALLTRAIL_APPEND_TIMEOUT_MS: '5000' });

describe('the runtime role', () => {
  let database: TestDatabase;
  let admin: pg.Client;
  let runtimeUrl: string;
  const role = `calltrail_runtime_${randomBytes(4).toString('hex')}`;
  const password = randomBytes(12).toString('hex');

  const asRuntimeRole = async <T>(run: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client(runtimeUrl);
    await client.connect();
    try {
      return await run(client);
    } finally {
      await client.end();
    }
  };

  beforeAll(async () => {
    database = await createTestDatabase('runtime_role');
    admin = new pg.Client(database.url);
    await admin.connect();
    const report = await migrateStores(configFor(database.url), quietLogger(), { runtimeRole: role });
    expect(report.runtimeRole).toEqual({ name: role, created: true });
    const { rows } = await admin.query<{ rolcanlogin: boolean; rolsuper: boolean }>(
      'SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = $1',
      [role],
    );
    // Created without a login: giving it one (and its password) is the operator's step.
    expect(rows).toEqual([{ rolcanlogin: false, rolsuper: false }]);
    await admin.query(`ALTER ROLE ${role} LOGIN PASSWORD '${password}'`);
    const url = new URL(database.url);
    url.username = role;
    url.password = password;
    runtimeUrl = url.toString();
  });

  afterAll(async () => {
    await admin?.end();
    await database?.drop();
    const cleanup = new pg.Client(inject('postgresUrl'));
    await cleanup.connect();
    await cleanup.query(`DROP ROLE IF EXISTS ${role}`);
    await cleanup.end();
  });

  it('appends and reads events through the adapter, and the projector writes the read models', async () => {
    const eventStore = await openPostgresEventStore(runtimeUrl, { timeoutMs: 5_000, pollIntervalMs: 200 });
    const readModels = openDatabase(runtimeUrl, { max: 4 });
    try {
      const scope = newScope();
      const callId = scope.callId('runtime');
      const revisions = new Map<string, bigint>();
      await appendCallEvents(
        eventStore,
        [statusUpdate(callId, 'in-progress', '2026-03-01T10:00:00.000Z')],
        revisions,
      );
      // A poison event makes the projector write a dead letter (a serial id) too.
      await appendRaw(
        eventStore,
        callId,
        [{ id: randomUUID(), type: 'status-update', data: { status: 'ringing' }, metadata: {} }],
        revisions,
      );
      await appendCallEvents(
        eventStore,
        [statusUpdate(callId, 'ended', '2026-03-01T10:02:00.000Z')],
        revisions,
      );
      const read = [];
      for await (const event of eventStore.readStream(callStreamName(callId))) read.push(event.type);
      expect(read).toEqual(['status-update', 'status-update', 'status-update']);

      const projector = await startProjector(
        {
          eventStore,
          database: readModels,
          logger: quietLogger(),
          metrics: createMetrics(),
          clock: () => new Date(),
        },
        testProjectorOptions(scope.streamPrefixes),
      );
      try {
        await waitUntilCaughtUp(projector);
      } finally {
        await projector.stop();
      }
      const calls = await readModels.pool.query<{ status: string }>(
        'SELECT status FROM calls WHERE call_id = $1',
        [callId],
      );
      expect(calls.rows).toEqual([{ status: 'ended' }]);
      expect(await deadLetters(readModels.pool)).toHaveLength(2);
      const checkpoints = await readModels.pool.query('SELECT projection FROM projection_checkpoints');
      expect(checkpoints.rowCount).toBeGreaterThan(0);
    } finally {
      await readModels.close();
      await eventStore.close();
    }
  });

  it('is refused every way of changing archived events, the triggers included', async () => {
    await asRuntimeRole(async (client) => {
      for (const statement of [
        'UPDATE event_store.events SET event_type = event_type',
        'DELETE FROM event_store.events',
        'TRUNCATE event_store.events',
        'ALTER TABLE event_store.events DISABLE TRIGGER events_append_only',
        'ALTER TABLE event_store.events DISABLE TRIGGER ALL',
        'DROP TABLE event_store.events',
        'TRUNCATE calls',
        'ALTER TABLE calls ADD COLUMN note text',
        'CREATE TABLE event_store.copy (id int)',
      ]) {
        await expect(client.query(statement), statement).rejects.toMatchObject({ code: '42501' });
      }
    });
  });

  it('holds no ownership, TRUNCATE, TRIGGER or REFERENCES right on any table', async () => {
    const { rows } = await admin.query<{ table: string; owner: boolean; extra: boolean }>(
      `SELECT c.oid::regclass::text AS table,
              pg_has_role($1, c.relowner, 'MEMBER') AS owner,
              has_table_privilege($1, c.oid, 'TRUNCATE') OR has_table_privilege($1, c.oid, 'TRIGGER')
                OR has_table_privilege($1, c.oid, 'REFERENCES') AS extra
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname IN ('public', 'event_store')`,
      [role],
    );
    expect(rows.length).toBeGreaterThanOrEqual(8);
    expect(rows.filter((row) => row.owner || row.extra)).toEqual([]);
    const events = await admin.query<{ update: boolean; delete: boolean }>(
      `SELECT has_table_privilege($1, 'event_store.events', 'UPDATE') AS update,
              has_table_privilege($1, 'event_store.events', 'DELETE') AS delete`,
      [role],
    );
    expect(events.rows).toEqual([{ update: false, delete: false }]);
  });

  it('warns at start-up when connected as the owner, not when connected as the runtime role', async () => {
    const asOwner = capturingLogger();
    const ownerStores = await openStores(configFor(database.url), quietLogger());
    try {
      reportConnectedRole(ownerStores.connectedRole, asOwner.logger);
    } finally {
      await ownerStores.close();
    }
    const ownerLines = asOwner.lines();
    expect(ownerLines.map((line) => line['level'])).toEqual([40]);
    expect(String(ownerLines[0]?.['msg'])).toContain('disable the append-only triggers');

    const asRuntime = capturingLogger();
    const runtimeStores = await openStores(configFor(runtimeUrl), quietLogger());
    try {
      expect(runtimeStores.connectedRole).toMatchObject({ name: role, superuser: false, ownsEvents: false });
      reportConnectedRole(runtimeStores.connectedRole, asRuntime.logger);
    } finally {
      await runtimeStores.close();
    }
    expect(asRuntime.lines()).toEqual([]);
  });

  it('starts with nothing to migrate, and names the owner when a migration is still pending', async () => {
    const folder = await mkdtemp(path.join(tmpdir(), 'calltrail-migrations-'));
    const readModels = openDatabase(runtimeUrl, { max: 1 });
    try {
      expect(await migrateReadModels(readModels)).toEqual([]);
      await cp(migrationsFolder('read-models'), folder, { recursive: true });
      const journalFile = path.join(folder, 'meta', '_journal.json');
      const journal = JSON.parse(await readFile(journalFile, 'utf8')) as {
        entries: { idx: number; when: number; tag: string }[];
      };
      const last = journal.entries.at(-1)!;
      journal.entries.push({ ...last, idx: last.idx + 1, when: last.when + 1, tag: '0001_calls_note' });
      await writeFile(journalFile, JSON.stringify(journal));
      await writeFile(
        path.join(folder, '0001_calls_note.sql'),
        'ALTER TABLE "calls" ADD COLUMN "note" text;',
      );
      await expect(migrateReadModels(readModels, { folder })).rejects.toThrow(
        /0001_calls_note\.sql failed: .*apply migrations as the owner of the database/,
      );
    } finally {
      await readModels.close();
      await rm(folder, { recursive: true, force: true });
    }
  });

  it('takes back rights granted by hand when migrate runs again, and refuses a role that is too powerful', async () => {
    await admin.query(`GRANT UPDATE, TRUNCATE, TRIGGER ON event_store.events TO ${role}`);
    const again = await migrateStores(configFor(database.url), quietLogger(), { runtimeRole: role });
    expect(again.runtimeRole).toEqual({ name: role, created: false });
    const { rows } = await admin.query<{ update: boolean; truncate: boolean; trigger: boolean }>(
      `SELECT has_table_privilege($1, 'event_store.events', 'UPDATE') AS update,
              has_table_privilege($1, 'event_store.events', 'TRUNCATE') AS truncate,
              has_table_privilege($1, 'event_store.events', 'TRIGGER') AS trigger`,
      [role],
    );
    expect(rows).toEqual([{ update: false, truncate: false, trigger: false }]);

    const { rows: me } = await admin.query<{ name: string }>('SELECT current_user AS name');
    await expect(
      migrateStores(configFor(database.url), quietLogger(), { runtimeRole: me[0]!.name }),
    ).rejects.toThrow(RuntimeRoleError);
    const superuser = `${role}_super`;
    await admin.query(`CREATE ROLE ${superuser} SUPERUSER NOLOGIN`);
    try {
      await expect(
        migrateStores(configFor(database.url), quietLogger(), { runtimeRole: superuser }),
      ).rejects.toThrow(/is a superuser/);
    } finally {
      await admin.query(`DROP ROLE ${superuser}`);
    }
    await expect(
      migrateStores(configFor(database.url), quietLogger(), { runtimeRole: 'Robert"; DROP' }),
    ).rejects.toThrow(/lower-case PostgreSQL role name/);
  });
});

describe('the runtime role with the event store and the read models in two databases', () => {
  it('is granted the event store in one database and the read models in the other', async () => {
    const [events, reads] = [
      await createTestDatabase('runtime_events'),
      await createTestDatabase('runtime_reads'),
    ];
    const role = `calltrail_split_${randomBytes(4).toString('hex')}`;
    try {
      const config = loadConfig({ CALLTRAIL_EVENTSTORE_URL: events.url, CALLTRAIL_DATABASE_URL: reads.url });
      const report = await migrateStores(config, quietLogger(), { runtimeRole: role });
      expect(report.runtimeRole).toEqual({ name: role, created: true });
      const privileges = async (url: string, table: string) => {
        const client = new pg.Client(url);
        await client.connect();
        try {
          const { rows } = await client.query<{ select: boolean; insert: boolean; update: boolean }>(
            `SELECT has_table_privilege($1, $2, 'SELECT') AS select, has_table_privilege($1, $2, 'INSERT') AS insert,
                    has_table_privilege($1, $2, 'UPDATE') AS update`,
            [role, table],
          );
          return rows[0];
        } finally {
          await client.end();
        }
      };
      expect(await privileges(events.url, 'event_store.events')).toEqual({
        select: true,
        insert: true,
        update: false,
      });
      expect(await privileges(reads.url, 'calls')).toEqual({ select: true, insert: true, update: true });
    } finally {
      await events.drop();
      await reads.drop();
      const admin = new pg.Client(inject('postgresUrl'));
      await admin.connect();
      await admin.query(`DROP ROLE IF EXISTS ${role}`);
      await admin.end();
    }
  });
});
