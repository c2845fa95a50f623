/**
 * The event stores the webhook suite runs against, each with a way to take it away and give it back:
 * the EventStoreDB adapter against the project's gRPC test server (whose own fault controls do it),
 * and the PostgreSQL adapter on its own test database behind a TCP proxy (cutting the proxy is the
 * store going away, for every connection at once).
 */
import { connectEventStoreDb } from '../../src/event-store/eventstoredb.ts';
import type { EventStore, RecordedEvent } from '../../src/event-store/event-store.ts';
import { openPostgresEventStore } from '../../src/event-store/postgres/postgres-event-store.ts';
import { startEventStoreDbTestServer } from '../eventstoredb-server/server.ts';
import { createTestDatabase } from '../support/database.ts';
import { startTcpProxy } from '../support/tcp-proxy.ts';

export interface StoreUnderTest {
  readonly eventStore: EventStore;
  /** A second adapter instance on the same data, as another calltrail process (or a restart) has. */
  connectAnother(): Promise<EventStore>;
  /** Every adapter instance loses the store until `bringBack()`. */
  takeDown(): Promise<void>;
  bringBack(): Promise<void>;
  close(): Promise<void>;
}

/** The EventStoreDB test server can also be made slow rather than absent. */
export interface EventStoreDbUnderTest extends StoreUnderTest {
  /** Every write takes this long (0 restores); past the server's write timeout it fails unwritten. */
  slowWrites(milliseconds: number): void;
  /** How many slowed writes the server has not yet written or timed out. */
  slowWritesInFlight(): number;
}

export interface StoreSubject {
  readonly name: string;
  open(options: { readonly timeoutMs: number }): Promise<StoreUnderTest>;
}

export const openEventStoreDb = async ({
  timeoutMs,
}: {
  readonly timeoutMs: number;
}): Promise<EventStoreDbUnderTest> => {
  const server = await startEventStoreDbTestServer();
  const opened: EventStore[] = [];
  const connect = () => {
    const store = connectEventStoreDb(server.url, { timeoutMs });
    opened.push(store);
    return store;
  };
  return {
    eventStore: connect(),
    connectAnother: async () => connect(),
    takeDown: () => server.goDown(),
    bringBack: () => server.comeBack(),
    slowWrites: (milliseconds) => server.setWriteDelay(milliseconds),
    slowWritesInFlight: () => server.delayedWritesInFlight,
    close: async () => {
      for (const store of opened) await store.close();
      await server.stop();
    },
  };
};

const eventStoreDb: StoreSubject = { name: 'eventstoredb', open: openEventStoreDb };

const postgres: StoreSubject = {
  name: 'postgres',
  open: async ({ timeoutMs }) => {
    const database = await createTestDatabase('webhook_event_store');
    const direct = new URL(database.url);
    const proxy = await startTcpProxy({ host: direct.hostname, port: Number(direct.port) });
    const viaProxy = new URL(database.url);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    const opened: EventStore[] = [];
    const connect = async () => {
      const store = await openPostgresEventStore(viaProxy.toString(), { timeoutMs });
      opened.push(store);
      return store;
    };
    return {
      eventStore: await connect(),
      connectAnother: connect,
      takeDown: () => proxy.goDown(),
      bringBack: () => proxy.comeBack(),
      close: async () => {
        for (const store of opened) await store.close();
        await proxy.close();
        await database.drop();
      },
    };
  },
};

export const storeSubjects: readonly StoreSubject[] = [eventStoreDb, postgres];

export const readStream = async (store: EventStore, streamName: string): Promise<RecordedEvent[]> => {
  const events: RecordedEvent[] = [];
  for await (const event of store.readStream(streamName)) events.push(event);
  return events;
};
