/**
 * The runtime role: the PostgreSQL role `serve` and `project` should connect as, which can insert
 * and read events but never change, delete or truncate them, nor disable the append-only triggers
 * (only a table's owner or a superuser can). `calltrail migrate --runtime-role NAME` creates it when
 * absent (without LOGIN or a password: the operator gives it those) and grants it exactly what
 * ingest, the projector and the audit API use. `rebuild` and `migrate` need DDL and run as the
 * owner. Serve and project say so when they connect as a role that could rewrite the archive.
 */
import { getTableName, type Table } from 'drizzle-orm';
import { getTableConfig, type PgTable } from 'drizzle-orm/pg-core';
import pg from 'pg';
import * as readModelSchema from '../database/schema.ts';
import { quoteIdentifier } from '../database/sql.ts';
import type { Logger } from '../logger.ts';

export class RuntimeRoleError extends Error {
  override readonly name = 'RuntimeRoleError';
}

/** An unquoted PostgreSQL identifier, so the name the operator types is the role's name. */
const roleNamePattern = /^[a-z_][a-z0-9_]{0,62}$/;

export const validateRuntimeRoleName = (name: string): string => {
  if (!roleNamePattern.test(name)) {
    throw new RuntimeRoleError(
      `--runtime-role must be a lower-case PostgreSQL role name (letters, digits, _; at most 63): ${JSON.stringify(name)}`,
    );
  }
  return name;
};

/** What the role is to be granted in one database. */
export interface RuntimeRoleParts {
  /** The event store's schema `event_store` is in this database. */
  readonly eventStore: boolean;
  /** The read models are in this database. */
  readonly readModels: boolean;
}

const eventsTable = 'event_store.events';
const eventStoreHistory = 'event_store.schema_migrations';
/** Where the read-model migrations record themselves (see `src/database/database.ts`). */
const readModelHistory = 'public.__drizzle_migrations';

const readModelTables = (): string[] =>
  Object.values(readModelSchema).map((table: PgTable) => {
    const schema = getTableConfig(table).schema ?? 'public';
    return `${quoteIdentifier(schema)}.${quoteIdentifier(getTableName(table as Table))}`;
  });

/** Refuses a role that already has more power than the runtime role may have. */
const checkExistingRole = async (
  client: pg.ClientBase,
  role: string,
  ownedTables: readonly string[],
): Promise<boolean> => {
  const { rows } = await client.query<{ superuser: boolean; current: boolean }>(
    `SELECT rolsuper AS superuser, rolname = current_user AS current FROM pg_roles WHERE rolname = $1`,
    [role],
  );
  const existing = rows[0];
  if (existing === undefined) return false;
  if (existing.current) {
    throw new RuntimeRoleError(
      `the runtime role must not be the role that migrates (${role}): name another role`,
    );
  }
  if (existing.superuser) {
    throw new RuntimeRoleError(`role ${role} is a superuser: the runtime role must be an ordinary role`);
  }
  for (const table of ownedTables) {
    const { rows: owner } = await client.query<{ owner: string; member: boolean }>(
      `SELECT pg_get_userbyid(c.relowner) AS owner, pg_has_role($1, c.relowner, 'MEMBER') AS member
         FROM pg_class c WHERE c.oid = $2::regclass`,
      [role, table],
    );
    const found = owner[0];
    if (found?.member === true) {
      throw new RuntimeRoleError(
        `role ${role} is or belongs to ${found.owner}, the owner of ${table}: the runtime role must not own what it writes`,
      );
    }
  }
  return true;
};

/** Sequences that fill a column of `table` (serial columns), which inserts need USAGE on. */
const sequencesOf = async (client: pg.ClientBase, table: string): Promise<string[]> => {
  const { rows } = await client.query<{ sequence: string }>(
    `SELECT d.objid::regclass::text AS sequence FROM pg_depend d JOIN pg_class s ON s.oid = d.objid
      WHERE d.classid = 'pg_class'::regclass AND d.refobjid = $1::regclass AND d.deptype = 'a'
        AND s.relkind = 'S'`,
    [table],
  );
  return rows.map((row) => row.sequence);
};

/**
 * Creates the role when absent (NOLOGIN, no password) and grants it, in the database `client` is
 * connected to, exactly: on the event store, SELECT and INSERT on the events table (identity
 * positions need no sequence right; the triggers' functions run without EXECUTE checks) and SELECT
 * on its migration history; on the read models, SELECT, INSERT, UPDATE and DELETE on their tables
 * (checkpoints, dead letters and forwarding's deliveries, attempts and destinations included) and
 * USAGE on their serial sequences, and SELECT on the
 * migration history, which every command reads at start-up. Whatever else the role held on those
 * tables is revoked first. Returns whether the role was created. Runs in one transaction.
 */
export const grantRuntimeRole = async (
  client: pg.ClientBase,
  name: string,
  parts: RuntimeRoleParts,
): Promise<{ created: boolean }> => {
  const role = validateRuntimeRoleName(name);
  const quoted = quoteIdentifier(role);
  const tables = parts.readModels ? readModelTables() : [];
  await client.query('BEGIN');
  try {
    const existed = await checkExistingRole(client, role, [
      ...(parts.eventStore ? [eventsTable] : []),
      ...tables,
    ]);
    if (!existed) await client.query(`CREATE ROLE ${quoted} NOLOGIN`);
    const { rows } = await client.query<{ database: string }>('SELECT current_database() AS database');
    await client.query(`GRANT CONNECT ON DATABASE ${quoteIdentifier(rows[0]!.database)} TO ${quoted}`);
    if (parts.eventStore) {
      await client.query(`GRANT USAGE ON SCHEMA event_store TO ${quoted}`);
      await client.query(`REVOKE ALL ON ${eventsTable} FROM ${quoted}`);
      await client.query(`GRANT SELECT, INSERT ON ${eventsTable} TO ${quoted}`);
      await client.query(`REVOKE ALL ON ${eventStoreHistory} FROM ${quoted}`);
      await client.query(`GRANT SELECT ON ${eventStoreHistory} TO ${quoted}`);
    }
    if (parts.readModels) {
      await client.query(`GRANT USAGE ON SCHEMA public TO ${quoted}`);
      for (const table of tables) {
        await client.query(`REVOKE ALL ON ${table} FROM ${quoted}`);
        await client.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ${table} TO ${quoted}`);
        for (const sequence of await sequencesOf(client, table)) {
          await client.query(`GRANT USAGE ON SEQUENCE ${sequence} TO ${quoted}`);
        }
      }
      await client.query(`REVOKE ALL ON ${readModelHistory} FROM ${quoted}`);
      await client.query(`GRANT SELECT ON ${readModelHistory} TO ${quoted}`);
    }
    await client.query('COMMIT');
    return { created: !existed };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    if (error instanceof RuntimeRoleError) throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new RuntimeRoleError(`could not set up the runtime role ${role}: ${message}`, { cause: error });
  }
};

/** The role a process is connected to the PostgreSQL event store as, and what it could do. */
export interface ConnectedRole {
  readonly name: string;
  readonly superuser: boolean;
  /** It owns the events table, or belongs to the role that does. */
  readonly ownsEvents: boolean;
  /** The zero-configuration default's embedded server, where calltrail is its only user. */
  readonly embedded: boolean;
}

/** Asks the event-store database who we are; undefined when it cannot be asked within the bound. */
export const inspectConnectedRole = async (
  url: string,
  options: { timeoutMs: number; embedded: boolean; logger: Logger },
): Promise<ConnectedRole | undefined> => {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: options.timeoutMs,
    statement_timeout: options.timeoutMs,
    query_timeout: options.timeoutMs,
    application_name: 'calltrail role check',
  });
  client.on('error', () => {});
  try {
    await client.connect();
    const { rows } = await client.query<{ name: string; superuser: boolean; owns_events: boolean | null }>(
      `SELECT current_user AS name, r.rolsuper AS superuser,
              pg_has_role(current_user, c.relowner, 'MEMBER') AS owns_events
         FROM pg_roles r LEFT JOIN pg_class c ON c.oid = to_regclass('${eventsTable}')
        WHERE r.rolname = current_user`,
    );
    const row = rows[0];
    if (row === undefined) return undefined;
    return {
      name: row.name,
      superuser: row.superuser,
      ownsEvents: row.owns_events === true,
      embedded: options.embedded,
    };
  } catch (error) {
    options.logger.debug({ err: error }, 'could not check the event-store role');
    return undefined;
  } finally {
    await client.end().catch(() => {});
  }
};

/**
 * Serve and project: one warning when the connected role could rewrite the archive (disable the
 * append-only triggers, then update or delete events). On the zero-configuration default, where
 * the embedded server's only role is its superuser, one line of information instead.
 */
export const reportConnectedRole = (role: ConnectedRole | undefined, logger: Logger): void => {
  if (role === undefined || !(role.superuser || role.ownsEvents)) return;
  if (role.embedded) {
    logger.info(
      'the embedded PostgreSQL runs calltrail as its superuser; in production, run serve and project ' +
        'as a runtime role (calltrail migrate --runtime-role NAME)',
    );
    return;
  }
  logger.warn(
    { role: role.name, superuser: role.superuser, ownsEvents: role.ownsEvents },
    `connected to the event store as ${role.name}, which ${role.superuser ? 'is a superuser' : 'owns event_store.events'}: ` +
      'it can disable the append-only triggers and change or delete archived events. Run serve and ' +
      'project as a runtime role (calltrail migrate --runtime-role NAME)',
  );
};
