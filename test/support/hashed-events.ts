/** Hashed events in columns read back as one object per event, for assertions on them. */
import {
  eventHashBytes,
  type HashedEvent,
  type HashedEventColumns,
} from '../../src/event-store/event-store.ts';

/** Event `index` of the columns as an object of its own. */
const hashedEventAt = (columns: HashedEventColumns, index: number): HashedEvent => ({
  position: { commit: columns.commits[index]!, prepare: columns.prepares[index]! },
  streamName: columns.streams[columns.streamIndexes[index]!]!,
  revision: columns.revisions[index]!,
  hash: columns.hashes.toString('hex', index * eventHashBytes, (index + 1) * eventHashBytes),
  created: new Date(columns.createdMs[index]!),
});

/** Every event of the columns, in order, as objects. */
export const hashedEventsOf = (columns: HashedEventColumns): HashedEvent[] =>
  Array.from({ length: columns.count }, (_, index) => hashedEventAt(columns, index));
