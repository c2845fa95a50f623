/**
 * The event-store contract against the PostgreSQL adapter, in a fresh database of the run's server.
 */
import { openPostgresEventStore } from '../../src/event-store/postgres/postgres-event-store.ts';
import { createTestDatabase } from '../support/database.ts';
import { describeEventStoreContract } from './event-store.contract.ts';

describeEventStoreContract('postgres', async () => {
  const database = await createTestDatabase('contract_postgres');
  const eventStore = await openPostgresEventStore(database.url, { timeoutMs: 5_000 });
  return { eventStore, dispose: () => database.drop() };
});
