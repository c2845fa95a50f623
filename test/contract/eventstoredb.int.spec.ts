/**
 * The event-store contract against the EventStoreDB adapter: over the project's EventStoreDB test
 * server by default, or over a real EventStoreDB/KurrentDB when `CALLTRAIL_TEST_ESDB_URL` names one
 * (the global setup provides whichever applies).
 */
import { inject } from 'vitest';
import { connectEventStoreDb } from '../../src/event-store/eventstoredb.ts';
import { describeEventStoreContract } from './event-store.contract.ts';

describeEventStoreContract('eventstoredb', async () => ({
  eventStore: connectEventStoreDb(inject('eventStoreDbUrl'), { timeoutMs: 5_000 }),
}));
