/**
 * How the `relay-exchanges` projection writes: one `relay_exchanges` row per exchange record of the
 * call streams, a row already stored left alone (see `read-model.ts`).
 */
import { callStreamPrefix } from '../../src/archive/streams.ts';
import { tableName, unnestColumnsOf, unnestInsert } from '../../src/database/sql.ts';
import type { Projection } from '../projection.ts';
import {
  isRelayExchange,
  relayExchangeRecord,
  relayExchanges,
  type RelayExchangeRecord,
} from './read-model.ts';

const relayExchangesTable = tableName(relayExchanges);
const relayExchangeColumns = unnestColumnsOf<typeof relayExchanges, never, RelayExchangeRecord>(
  relayExchanges,
);

export const relayExchangesProjection: Projection<RelayExchangeRecord> = {
  name: 'relay-exchanges',
  tables: [relayExchangesTable],
  streamPrefix: callStreamPrefix,
  folds: isRelayExchange,
  decode: relayExchangeRecord,
  apply: async (client, rows) => {
    if (rows.length > 0) {
      await client.query(
        unnestInsert(relayExchangesTable, relayExchangeColumns, rows, 'ON CONFLICT (event_id) DO NOTHING'),
      );
    }
    return [];
  },
};
