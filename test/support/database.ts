/**
 * Per-test-file isolation: each caller gets a fresh database on the run's Postgres server, dropped
 * again by `drop()`.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

const withAdmin = async <T>(run: (client: pg.Client) => Promise<T>): Promise<T> => {
  const client = new pg.Client(inject('postgresUrl'));
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
};

/**
 * `encoding`: a database in another server encoding than the cluster's (with the C locale, which
 * suits any encoding), for what depends on it.
 */
export const createTestDatabase = async (
  label = 'test',
  options: { encoding?: 'LATIN1' } = {},
): Promise<TestDatabase> => {
  const name = `${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${randomBytes(6).toString('hex')}`;
  const encoding =
    options.encoding === undefined
      ? ''
      : ` ENCODING '${options.encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`;
  await withAdmin((client) => client.query(`CREATE DATABASE "${name}"${encoding}`));
  const url = new URL(inject('postgresUrl'));
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: () =>
      withAdmin((client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(() => {}),
  };
};
