/**
 * How the `quarantine` projection writes: one `quarantined_requests` row per record of the
 * quarantine streams, a row already stored left alone (its position is its key), so applying a
 * batch twice changes nothing.
 */
import { quarantineStreamPrefix } from '../../src/archive/streams.ts';
import { tableName, unnestColumnsOf, unnestInsert } from '../../src/database/sql.ts';
import type { Projection } from '../projection.ts';
import { quarantinedRequestRow, quarantinedRequests, type QuarantinedRequestRow } from './read-model.ts';

const quarantinedRequestsTable = tableName(quarantinedRequests);
const quarantinedRequestColumns = unnestColumnsOf(quarantinedRequests);

export const quarantineProjection: Projection<QuarantinedRequestRow> = {
  name: 'quarantine',
  tables: [quarantinedRequestsTable],
  streamPrefix: quarantineStreamPrefix,
  decode: quarantinedRequestRow,
  apply: async (client, rows) => {
    if (rows.length > 0) {
      await client.query(
        unnestInsert(
          quarantinedRequestsTable,
          quarantinedRequestColumns,
          rows,
          'ON CONFLICT (commit_position, prepare_position) DO NOTHING',
        ),
      );
    }
    return [];
  },
};
