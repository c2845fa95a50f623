/**
 * What an append does to a stream, decided from the stream's current state: write, acknowledge an
 * earlier identical append (idempotency), or refuse (wrong expected version). EventStoreDB's rules,
 * kept pure so both the group-commit writer and the tests use exactly the same decision.
 */
import type { ExpectedRevision } from '../event-store.ts';

export type AppendDecision =
  | { readonly kind: 'write'; readonly firstRevision: bigint }
  /** Every proposed event is already there, the last one at `lastRevision`: write nothing. */
  | { readonly kind: 'idempotent'; readonly lastRevision: bigint }
  | { readonly kind: 'wrong-expected-version'; readonly actualRevision: bigint | 'no-stream' };

/** What the decision may look at in the stream, as of the moment it is made. */
export interface StreamView {
  /** The last revision; undefined when the stream does not exist. */
  readonly head: bigint | undefined;
  /** The id of the event at `revision`, if there is one. */
  idAt(revision: bigint): string | undefined;
  /** The latest revision holding an event with this id, if any. */
  latestRevisionOf(eventId: string): bigint | undefined;
}

/**
 * `eventIds` must not be empty and must be normalized (lower-case UUIDs) like the view's ids.
 *
 * - Exact revision or `'no-stream'` (-1): equal to the head -> write; ahead of it -> wrong expected
 *   version; behind it -> idempotent only when the ids sit at expected+1, expected+2, ... in order
 *   (a first-event mismatch or a partial match is a wrong expected version).
 * - `'stream-exists'`: the stream must exist; then as `'any'`.
 * - `'any'`: idempotent when every id is already in the stream; a write when the first one is not;
 *   wrong expected version when only some are (EventStoreDB's "corrupted idempotency").
 */
export const decideAppend = (
  expected: ExpectedRevision,
  eventIds: readonly string[],
  stream: StreamView,
): AppendDecision => {
  const current = stream.head ?? -1n;
  const wrongExpectedVersion: AppendDecision = {
    kind: 'wrong-expected-version',
    actualRevision: stream.head ?? 'no-stream',
  };

  if (expected === 'stream-exists' && stream.head === undefined) return wrongExpectedVersion;

  if (expected === 'any' || expected === 'stream-exists') {
    let lastRevision: bigint | undefined;
    for (const [index, eventId] of eventIds.entries()) {
      const revision = stream.latestRevisionOf(eventId);
      if (revision === undefined) {
        return index === 0 ? { kind: 'write', firstRevision: current + 1n } : wrongExpectedVersion;
      }
      lastRevision = revision;
    }
    return lastRevision === undefined
      ? { kind: 'write', firstRevision: current + 1n }
      : { kind: 'idempotent', lastRevision };
  }

  const expectedRevision = expected === 'no-stream' ? -1n : expected;
  if (expectedRevision === current) return { kind: 'write', firstRevision: current + 1n };
  if (expectedRevision > current) return wrongExpectedVersion;

  let revision = expectedRevision;
  for (const eventId of eventIds) {
    revision += 1n;
    if (stream.idAt(revision) !== eventId) return wrongExpectedVersion;
  }
  return { kind: 'idempotent', lastRevision: revision };
};
