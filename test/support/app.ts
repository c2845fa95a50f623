/**
 * Builds the real calltrail HTTP application on given stores, with a clock the test controls and a
 * complete test configuration, for `app.inject` tests of any route.
 */
import { createHmac } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { buildApp, type App } from '../../src/app.ts';
import { adminTokens, type ApiToken } from '../../src/access/api-tokens.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import type { Database } from '../../src/database/database.ts';
import type { EventStore } from '../../src/event-store/event-store.ts';
import type { ProjectionStatusSource } from '../../src/projector/status.ts';
import type { DurableArchive } from '../../src/journal/durable-archive.ts';
import { createMetrics, type Metrics } from '../../src/metrics.ts';

export const testWebhookSecret = 'test-webhook-secret-0123456789abcdef';
export const testWebhookToken = 'test-webhook-token-0123456789abcdef';
export const testApiToken = 'test-api-token-0123456789abcdef';

export interface TestClock {
  readonly now: () => Date;
  set(at: Date | string): void;
  advance(milliseconds: number): void;
}

/** Starts at a fixed instant and moves only when told. */
export const createTestClock = (start: Date | string = '2025-08-28T08:02:00.000Z'): TestClock => {
  let current = new Date(start).getTime();
  return {
    now: () => new Date(current),
    set: (at) => {
      current = new Date(at).getTime();
    },
    advance: (milliseconds) => {
      current += milliseconds;
    },
  };
};

export interface TestConfigOverrides {
  readonly webhook?: Partial<Config['webhook']>;
  readonly appendTimeoutMs?: number;
  /** Bare strings are admin tokens named `token-<n>`, as the variable's old form gives them. */
  readonly apiTokens?: readonly (string | ApiToken)[];
  readonly journal?: Config['journal'];
  readonly http?: Partial<Config['http']>;
  readonly readModels?: Partial<Config['readModels']>;
}

/**
 * The production configuration with both webhook secret and token configured, one API token, on a
 * free local port, without logs, and no overload refusals unless a test asks (a busy test machine is
 * not an overloaded server); `overrides` on top.
 */
export const testConfig = (overrides: TestConfigOverrides = {}): Config => {
  const base = loadConfig({
    CALLTRAIL_DATA_DIR: './.calltrail-test',
    CALLTRAIL_HOST: '127.0.0.1',
    CALLTRAIL_PORT: '0',
    CALLTRAIL_LOG_LEVEL: 'silent',
    CALLTRAIL_WEBHOOK_SECRET: testWebhookSecret,
    CALLTRAIL_WEBHOOK_TOKEN: testWebhookToken,
    CALLTRAIL_API_TOKENS: testApiToken,
    CALLTRAIL_MAX_EVENT_LOOP_DELAY_MS: '0',
  });
  return {
    ...base,
    webhook: { ...base.webhook, ...overrides.webhook },
    appendTimeoutMs: overrides.appendTimeoutMs ?? base.appendTimeoutMs,
    apiTokens:
      overrides.apiTokens === undefined
        ? base.apiTokens
        : [
            ...adminTokens(overrides.apiTokens.filter((token) => typeof token === 'string')),
            ...overrides.apiTokens.filter((token) => typeof token !== 'string'),
          ],
    journal: overrides.journal ?? base.journal,
    http: { ...base.http, ...overrides.http },
    readModels: { ...base.readModels, ...overrides.readModels },
  };
};

export interface TestAppOptions {
  readonly eventStore: EventStore;
  readonly database: Database;
  readonly config?: Config;
  readonly clock?: TestClock;
  readonly metrics?: Metrics;
  readonly projections?: ProjectionStatusSource;
  readonly archive?: DurableArchive;
  /** Silent unless given. */
  readonly logger?: FastifyBaseLogger;
}

export interface TestApp {
  readonly app: App;
  readonly clock: TestClock;
  readonly metrics: Metrics;
  readonly config: Config;
}

/** Remember to `await app.close()`; the stores belong to the caller. */
export const buildTestApp = async (options: TestAppOptions): Promise<TestApp> => {
  const clock = options.clock ?? createTestClock();
  const metrics = options.metrics ?? createMetrics();
  const config = options.config ?? testConfig();
  const app = await buildApp(
    {
      config,
      eventStore: options.eventStore,
      database: options.database,
      metrics,
      clock: clock.now,
      ...(options.projections === undefined ? {} : { projections: options.projections }),
      ...(options.archive === undefined ? {} : { archive: options.archive }),
    },
    { logger: options.logger ?? false },
  );
  await app.ready();
  return { app, clock, metrics, config };
};

/** Flireo's signature headers for a body: hex HMAC-SHA256 over `<timestamp>.<raw body>`. */
export const signatureHeaders = (
  body: string | Buffer,
  options: { secret?: string; at: Date; prefix?: boolean },
): Record<string, string> => {
  const timestamp = String(Math.floor(options.at.getTime() / 1000));
  const signature = createHmac('sha256', options.secret ?? testWebhookSecret)
    .update(`${timestamp}.`)
    .update(body)
    .digest('hex');
  return {
    'x-webhook-timestamp': timestamp,
    'x-webhook-signature': options.prefix === true ? `sha256=${signature}` : signature,
  };
};
