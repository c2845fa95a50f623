/**
 * What the relay tests share: a relay configuration whose assistant numbers each choose one
 * behaviour of the customer's handler, the app built as `serve` builds it (the store with the outage
 * journal behind it), signed deliveries, and waiting for a stream's records.
 */
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import type { Database } from '../../src/database/database.ts';
import type { RecordedEvent } from '../../src/event-store/event-store.ts';
import { openOutageJournal, type OutageJournal } from '../../src/journal/outage-journal.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics, type Metrics } from '../../src/metrics.ts';
import type { RelayExchange } from '../../src/relay/exchange.ts';
import { parseRelayConfig, type RelayFallbacks } from '../../src/relay/relay-config.ts';
import { createArchiveWriter } from '../../src/webhook/ingest.ts';
import { buildTestApp, signatureHeaders, testConfig, type TestApp } from '../support/app.ts';
import { readStream, type StoreUnderTest } from '../webhook/stores.ts';
import type { CustomerHandler } from './customer-handler.ts';

export const deadlineMs = 1_000;
export const scenarios = [
  'fast',
  'slow',
  'fail',
  'garbage',
  'wrong-ids',
  'huge',
  'hang',
  'close',
  'redirect',
  'down',
];
export type Scenario = (typeof scenarios)[number];
/** Each scenario is an assistant number whose override is that path of the handler. */
export const assistantFor = (scenario: Scenario): string =>
  `+3185000${String(scenarios.indexOf(scenario)).padStart(4, '0')}`;

/** A port nothing listens on. */
export const closedPort = async (): Promise<number> => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
};

export const relayTestConfig = (
  handler: CustomerHandler,
  downPort: number,
  fallbacks: RelayFallbacks | undefined,
  journalDir: string,
) => {
  const overrides = Object.fromEntries(
    scenarios.map((scenario) => [
      assistantFor(scenario),
      scenario === 'down' ? `http://127.0.0.1:${downPort}/down` : handler.url(`/${scenario}`),
    ]),
  );
  return {
    ...testConfig({ journal: { dir: journalDir, maxBytes: 64 * 1024 * 1024 } }),
    relay: parseRelayConfig({
      url: handler.url('/fast'),
      overrides: JSON.stringify(overrides),
      fallbacks: fallbacks === undefined ? undefined : JSON.stringify(fallbacks),
      assistantRequestDeadlineMs: deadlineMs,
      toolCallsDeadlineMs: deadlineMs,
      archiveBudgetMs: 200,
      maxResponseBytes: 1_048_576,
      archivedResponseBytes: 1_024,
      listenHost: '127.0.0.1',
      listenPort: 0,
      publicUrl: undefined,
    }),
  };
};

export const toolCalls = (callId: string, scenario: Scenario, taskIds: readonly string[]) =>
  JSON.stringify({
    eventTime: 1756368190007,
    eventType: 'tool-calls',
    callId,
    toAssistant: assistantFor(scenario),
    tasksInitiated: taskIds.map((taskId) => ({ taskId, taskName: 'check_availability', taskPayload: {} })),
    userMetadata: {},
  });

export const assistantRequest = (scenario: Scenario) =>
  JSON.stringify({
    eventType: 'assistant-request',
    fromCaller: '+31612345678',
    toAssistant: assistantFor(scenario),
  });

export const deliver = (test: TestApp, body: string) =>
  test.app.inject({
    method: 'POST',
    url: '/webhooks/flireo',
    payload: body,
    headers: {
      'content-type': 'application/json',
      'x-webhook-event': 'relayed',
      ...signatureHeaders(body, { at: test.clock.now() }),
    },
  });

export const waitFor = async <T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 15_000,
): Promise<T> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

/** The request's stream once it holds `count` events. */
export const streamWith = (store: StoreUnderTest, stream: string, count: number): Promise<RecordedEvent[]> =>
  waitFor(`${stream} with ${count} events`, async () => {
    const events = await readStream(store.eventStore, stream);
    return events.length >= count ? events : undefined;
  });

export const exchangeOf = (events: readonly RecordedEvent[], requestEventId: string): RelayExchange => {
  const exchanges = events.filter(
    (event) =>
      event.type === 'relay-exchange' && (event.data as RelayExchange).requestEventId === requestEventId,
  );
  expect(exchanges).toHaveLength(1);
  const request = events.findIndex((event) => event.id === requestEventId);
  expect(request).toBeGreaterThanOrEqual(0);
  expect(events.indexOf(exchanges[0]!)).toBeGreaterThan(request);
  return exchanges[0]!.data as RelayExchange;
};

export const metricValue = async (test: TestApp, labels: string): Promise<number> => {
  const text = await test.metrics.registry.metrics();
  const line = text.split('\n').find((row) => row.startsWith(`calltrail_relay_requests_total{${labels}}`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
};

/** The app as `serve` builds it: the store with the outage journal behind it. */
export const startRelayApp = async (
  store: StoreUnderTest,
  database: Database,
  config: ReturnType<typeof relayTestConfig>,
  metrics: Metrics = createMetrics(),
): Promise<{ test: TestApp; outage: OutageJournal; close(): Promise<void> }> => {
  const outage = await openOutageJournal({
    config,
    writer: createArchiveWriter(store.eventStore, { timeoutMs: config.appendTimeoutMs }),
    logger: createLogger({ level: 'silent' }),
    metrics,
  });
  const test = await buildTestApp({
    eventStore: store.eventStore,
    database,
    config,
    metrics,
    archive: outage.archive,
  });
  return {
    test,
    outage,
    close: async () => {
      await test.app.close();
      await outage.close();
    },
  };
};
