/**
 * The benchmark's own PostgreSQL: the embedded server calltrail ships, in a temporary data
 * directory that is removed afterwards, with one database per data set so the benchmarks do not
 * disturb one another.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../src/database/embedded-postgres.ts';

export interface BenchPostgres {
  readonly dataDir: string;
  /** Creates an empty database and returns its connection string. */
  createDatabase(name: string): Promise<string>;
  urlFor(name: string): string;
  /** The postmaster's pid, to measure the server's CPU use; undefined if it cannot be read. */
  readonly pid: number | undefined;
  /** The server's settings that shape the figures (fsync, shared buffers, ...). */
  settings(): Promise<Record<string, string>>;
  stop(): Promise<void>;
}

export const startBenchPostgres = async (): Promise<BenchPostgres> => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'calltrail-bench-'));
  let server;
  try {
    server = await startEmbeddedPostgres({ dataDir });
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  const running = server;
  const postmasterPid = await readFile(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').then(
    (text) => Number(text.split('\n')[0]) || undefined,
    () => undefined,
  );
  const admin = async <T>(work: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client(running.url);
    await client.connect();
    try {
      return await work(client);
    } finally {
      await client.end();
    }
  };
  return {
    dataDir,
    pid: postmasterPid,
    urlFor: (name) => running.urlFor(name),
    createDatabase: async (name) => {
      await admin((client) => client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`));
      return running.urlFor(name);
    },
    settings: () =>
      admin(async (client) => {
        const { rows } = await client.query<{ name: string; setting: string; unit: string | null }>(
          `SELECT name, setting, unit FROM pg_settings
            WHERE name IN ('server_version', 'fsync', 'synchronous_commit', 'shared_buffers', 'wal_level',
                           'max_wal_size', 'work_mem')`,
        );
        return Object.fromEntries(rows.map((row) => [row.name, `${row.setting}${row.unit ?? ''}`]));
      }),
    stop: async () => {
      try {
        await running.stop();
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    },
  };
};
