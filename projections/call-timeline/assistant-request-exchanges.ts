/**
 * Read model `assistant_request_exchanges` (written by the call-timeline projection, beside
 * `relay_exchanges`): the `relay-exchange` records of the per-day streams of requests that name no
 * call (an `assistant-request` comes before the call has an id), one row each, keyed by its event id
 * (applying it twice changes nothing). The same columns as `relay_exchanges`, with the stream in
 * place of the call: `GET /assistant-requests/relay-exchanges` lists them.
 */
import { index, pgTable, text, uuid } from 'drizzle-orm/pg-core';
import { PoisonEventError } from '../../src/archive/call-event.ts';
import { assistantRequestStreamPrefix } from '../../src/archive/streams.ts';
import type { RecordedEvent } from '../../src/event-store/event-store.ts';
import { exchangeColumns, relayExchangeFields } from './relay-exchanges.ts';

export const assistantRequestExchanges = pgTable(
  'assistant_request_exchanges',
  {
    eventId: uuid('event_id').primaryKey(),
    /** `assistant-requests-<UTC day>`: the stream the request and its exchange are in. */
    streamName: text('stream_name').notNull(),
    ...exchangeColumns(),
  },
  (table) => [
    index('assistant_request_exchanges_position_idx').on(table.commitPosition, table.preparePosition),
  ],
);
export type AssistantRequestExchangeRow = typeof assistantRequestExchanges.$inferSelect;

/** The row as the projector sends it: the start time as the normalized text the record carries. */
export type AssistantRequestExchangeRecord = Omit<AssistantRequestExchangeRow, 'startedAt'> & {
  readonly startedAt: string;
};

/** Throws `PoisonEventError` for a record that is not a relay exchange of a per-day request stream. */
export const assistantRequestExchangeRecord = (recorded: RecordedEvent): AssistantRequestExchangeRecord => {
  if (!recorded.streamName.startsWith(assistantRequestStreamPrefix)) {
    throw new PoisonEventError(
      `streamName: not an assistant-request stream: ${JSON.stringify(recorded.streamName)}`,
    );
  }
  return { ...relayExchangeFields(recorded), streamName: recorded.streamName };
};
