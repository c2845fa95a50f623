/**
 * The DDL of a rebuild's shadow tables: a schema of their own per projection, and tables that copy
 * the live tables' columns, constraints, indexes and grants under the same names, so that after the
 * swap they are indistinguishable from what the migrations created.
 */
import type pg from 'pg';
import { quoteIdentifier } from '../database/sql.ts';

export class RebuildError extends Error {
  override readonly name = 'RebuildError';
}

export const shadowSchemaFor = (projection: string): string =>
  `calltrail_rebuild_${projection.replace(/[^a-z0-9]+/gi, '_').toLowerCase()}`;

export const liveSchemaOf = async (client: pg.ClientBase, table: string): Promise<string> => {
  const { rows } = await client.query<{ schema: string | null }>(
    `SELECT n.nspname AS schema FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = to_regclass($1)`,
    [table],
  );
  const schema = rows[0]?.schema;
  if (schema === undefined || schema === null) {
    throw new RebuildError(
      `table ${table} does not exist; apply the read-model migrations first (calltrail migrate)`,
    );
  }
  return schema;
};

export const qualified = (schema: string, table: string) =>
  `${quoteIdentifier(schema)}.${quoteIdentifier(table)}`;

/** Columns, defaults, NOT NULLs, keys, checks and grants of the live table, under the same names. */
export const createShadowTable = async (
  client: pg.ClientBase,
  live: string,
  shadow: string,
  table: string,
) => {
  const source = qualified(live, table);
  const target = qualified(shadow, table);
  await client.query(
    `CREATE TABLE ${target} (LIKE ${source} INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING IDENTITY
       INCLUDING STORAGE INCLUDING COMMENTS INCLUDING COMPRESSION)`,
  );
  const constraints = await client.query<{ name: string; definition: string }>(
    `SELECT conname AS name, pg_get_constraintdef(oid) AS definition FROM pg_constraint
     WHERE conrelid = $1::regclass AND contype IN ('p', 'u', 'c', 'x') ORDER BY conname`,
    [source],
  );
  for (const { name, definition } of constraints.rows) {
    await client.query(`ALTER TABLE ${target} ADD CONSTRAINT ${quoteIdentifier(name)} ${definition}`);
  }
  const grants = await client.query<{ privilege: string; grantee: string }>(
    `SELECT a.privilege_type AS privilege,
            CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS grantee
     FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
     WHERE c.oid = $1::regclass AND a.grantee <> c.relowner`,
    [source],
  );
  for (const { privilege, grantee } of grants.rows) {
    await client.query(`GRANT ${privilege} ON ${target} TO ${grantee}`);
  }
};

/** Indexes that back no constraint; built after the bulk replay, which is faster than maintaining them. */
export const createShadowIndexes = async (
  client: pg.ClientBase,
  live: string,
  shadow: string,
  table: string,
) => {
  const { rows } = await client.query<{ definition: string }>(
    `SELECT pg_get_indexdef(x.indexrelid) AS definition FROM pg_index x
     WHERE x.indrelid = $1::regclass
       AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid AND c.conrelid = x.indrelid)`,
    [qualified(live, table)],
  );
  for (const { definition } of rows) {
    const onTable = / ON (ONLY )?\S+ USING /;
    if (!onTable.test(definition)) throw new RebuildError(`cannot copy index definition: ${definition}`);
    await client.query(definition.replace(onTable, ` ON ${qualified(shadow, table)} USING `));
  }
  await client.query(`ANALYZE ${qualified(shadow, table)}`);
};
