/**
 * Store selection from the configuration, the generated credentials of the embedded default, and
 * opening real stores for the external combinations (the embedded default itself is exercised end to
 * end by the `serve` e2e spec).
 */
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { adminTokens } from '../../src/access/api-tokens.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { applyGeneratedSecrets, SecretsFileError } from '../../src/stores/credentials.ts';
import { openStores } from '../../src/stores/open.ts';
import { planStores } from '../../src/stores/plan.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

const logger = createLogger({ level: 'silent' });

/** Processes whose command line mentions `text` (Linux). */
const processesMentioning = async (text: string): Promise<string[]> => {
  const found: string[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const commandLine = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (commandLine.includes(text)) found.push(entry);
  }
  return found;
};

/** The production configuration on a free local port, without logs, with `overrides` on top. */
const baseConfig = (overrides: Partial<Config> = {}): Config => ({
  ...loadConfig({ CALLTRAIL_HOST: '127.0.0.1', CALLTRAIL_PORT: '0', CALLTRAIL_LOG_LEVEL: 'silent' }),
  ...overrides,
});

describe('planStores', () => {
  const esdb = 'esdb://127.0.0.1:2113?tls=false';
  const eventsPg = 'postgres://u:p@events/archive';
  const readPg = 'postgresql://u:p@reads/models';

  it.each([
    [esdb, readPg, { kind: 'eventstoredb', url: esdb }, { kind: 'external', url: readPg }, false],
    [esdb, undefined, { kind: 'eventstoredb', url: esdb }, { kind: 'embedded' }, false],
    ['kurrentdb+discover://a:2113,b:2113', undefined, { kind: 'eventstoredb' }, { kind: 'embedded' }, false],
    [
      eventsPg,
      readPg,
      { kind: 'postgres', location: { kind: 'external', url: eventsPg } },
      { kind: 'external', url: readPg },
      false,
    ],
    [
      eventsPg,
      undefined,
      { kind: 'postgres', location: { kind: 'external', url: eventsPg } },
      { kind: 'external', url: eventsPg },
      false,
    ],
    [
      undefined,
      readPg,
      { kind: 'postgres', location: { kind: 'external', url: readPg } },
      { kind: 'external', url: readPg },
      false,
    ],
    [undefined, undefined, { kind: 'postgres', location: { kind: 'embedded' } }, { kind: 'embedded' }, true],
  ] as const)(
    'EVENTSTORE_URL=%s DATABASE_URL=%s',
    (eventStoreUrl, databaseUrl, eventStore, readModels, embedded) => {
      expect(planStores({ eventStoreUrl, databaseUrl })).toMatchObject({
        eventStore,
        readModels,
        embeddedDefault: embedded,
      });
    },
  );
});

describe('generated credentials of the embedded default', () => {
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'calltrail-secrets-'));
  });

  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('generates url-safe credentials once, in a 0600 file, and reuses them', async () => {
    const config = baseConfig({ dataDir });
    const first = await applyGeneratedSecrets(config, logger);
    const { secret, token } = first.config.webhook;
    const apiToken = first.config.apiTokens[0]?.token;
    expect(first.config.apiTokens[0]).toMatchObject({ name: 'generated', role: 'admin' });
    for (const value of [secret, token, apiToken]) expect(value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(first.generated).toMatchObject({
      webhookSecret: true,
      webhookToken: true,
      apiToken: true,
      createdNow: true,
    });
    const file = path.join(dataDir, 'secrets.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    const second = await applyGeneratedSecrets(config, logger);
    expect(second.config).toEqual(first.config);
    expect(second.generated?.createdNow).toBe(false);
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({
      webhookSecret: secret,
      webhookToken: token,
      apiToken,
    });
  });

  it('never overrides configured credentials, and generates no webhook ones for insecure webhooks', async () => {
    const configured = baseConfig({
      dataDir,
      webhook: { ...baseConfig().webhook, token: 'configured-token-0123456789' },
      apiTokens: adminTokens(['configured-api-token-0123456789']),
    });
    expect(await applyGeneratedSecrets(configured, logger)).toEqual({
      config: configured,
      generated: undefined,
    });

    const insecure = baseConfig({ dataDir, webhook: { ...baseConfig().webhook, insecure: true } });
    const result = await applyGeneratedSecrets(insecure, logger);
    expect(result.config.webhook).toEqual(insecure.webhook);
    expect(result.config.apiTokens).toHaveLength(1);
    expect(result.generated).toMatchObject({ webhookSecret: false, webhookToken: false, apiToken: true });
  });

  it('tightens a secrets file others can read, and rejects a damaged one by name', async () => {
    const file = path.join(dataDir, 'secrets.json');
    await chmod(file, 0o644);
    await applyGeneratedSecrets(baseConfig({ dataDir }), logger);
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    await writeFile(file, '{"webhookToken": "has spaces in it, not url-safe"}');
    await expect(applyGeneratedSecrets(baseConfig({ dataDir }), logger)).rejects.toThrow(SecretsFileError);
    await writeFile(file, '{not json');
    await expect(applyGeneratedSecrets(baseConfig({ dataDir }), logger)).rejects.toThrow(
      `${file} is not valid JSON`,
    );
  });
});

describe('openStores with external databases', () => {
  let events: TestDatabase;
  let readModels: TestDatabase;

  beforeAll(async () => {
    [events, readModels] = await Promise.all([
      createTestDatabase('runtime_events'),
      createTestDatabase('runtime_reads'),
    ]);
  });

  afterAll(async () => {
    await Promise.all([events?.drop(), readModels?.drop()]);
  });

  const schemasOf = async (url: string): Promise<string[]> => {
    const client = new pg.Client(url);
    await client.connect();
    try {
      const { rows } = await client.query<{ table_schema: string; table_name: string }>(
        `SELECT table_schema, table_name FROM information_schema.tables
          WHERE table_schema IN ('event_store', 'public') ORDER BY 1, 2`,
      );
      return [...new Set(rows.map((row) => row.table_schema))];
    } finally {
      await client.end();
    }
  };

  it('puts the event store and the read models in their own databases when both URLs are given', async () => {
    const stores = await openStores(
      baseConfig({
        eventStoreUrl: events.url,
        databaseUrl: readModels.url,
        apiTokens: adminTokens(['a-configured-api-token']),
      }),
      logger,
    );
    try {
      expect(stores.eventStore.kind).toBe('postgres');
      await stores.eventStore.ping();
      expect(stores.generatedSecrets).toBeUndefined();
      expect(stores.locations.eventStore).not.toContain(new URL(events.url).password || '\u0000');
      expect(stores.locations.eventStore).toContain(events.name);
      expect(stores.locations.readModels).toContain(readModels.name);
    } finally {
      await stores.close();
    }
    expect(await schemasOf(events.url)).toEqual(['event_store']);
    expect(await schemasOf(readModels.url)).toEqual(['public']);
  });

  it('shares one database, in separate schemas, when only DATABASE_URL is given', async () => {
    const shared = await createTestDatabase('runtime_shared');
    try {
      const stores = await openStores(baseConfig({ databaseUrl: shared.url }), logger);
      await stores.close();
      expect(await schemasOf(shared.url)).toEqual(['event_store', 'public']);
    } finally {
      await shared.drop();
    }
  });

  it('uses EventStoreDB for events when its URL is given', async () => {
    const stores = await openStores(
      baseConfig({ eventStoreUrl: inject('eventStoreDbUrl'), databaseUrl: readModels.url }),
      logger,
    );
    try {
      expect(stores.eventStore.kind).toBe('eventstoredb');
      await stores.eventStore.ping();
      expect(stores.locations.eventStore).toMatch(/^EventStoreDB at esdb:\/\//);
    } finally {
      await stores.close();
    }
  });

  it('stops the embedded PostgreSQL it started when a later step fails', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'calltrail-runtime-'));
    try {
      await writeFile(path.join(dataDir, 'secrets.json'), '{not json');
      await expect(openStores(baseConfig({ dataDir }), logger, { embedded: 'exclusive' })).rejects.toThrow(
        SecretsFileError,
      );
      // The server was started (the cluster exists) and stopped again, lock released.
      expect((await stat(path.join(dataDir, 'postgres', 'PG_VERSION'))).isFile()).toBe(true);
      expect(await processesMentioning(dataDir)).toEqual([]);
      await expect(stat(path.join(dataDir, 'calltrail.lock'))).rejects.toThrow();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
