/**
 * The one interface through which the projector's runner knows a projection: its name, the tables
 * it owns, which streams it folds and how it decodes their records, and how to apply a batch of
 * decoded events inside the runner's transaction. Each
 * projection is a folder here: `read-model.ts` (its drizzle table and pure fold) and
 * `projection.ts` (how its rows are written: it loads the rows a batch touches once, folds in
 * memory and writes the changes back with multi-row statements).
 */
import type pg from 'pg';
import type { RecordedEvent } from '../src/event-store/event-store.ts';

export interface RejectedEvent {
  readonly eventId: string;
  readonly error: string;
}

export interface Projection<Event = unknown> {
  readonly name: string;
  /** The read-model tables it alone writes; a rebuild replaces them together. */
  readonly tables: readonly string[];
  /**
   * The streams it folds, by name prefix. The projector's subscription may carry other streams too
   * (for other projections): their events pass this one by, neither applied nor dead letters.
   */
  readonly streamPrefix: string;
  /** Further streams it folds records of, by name prefix (with `folds` choosing which records). */
  readonly otherStreamPrefixes?: readonly string[];
  /**
   * Which records of its streams it folds, when not all: the others (records another projection
   * folds, such as relay exchanges beside a call's events) pass it by, neither applied nor dead letters.
   */
  readonly folds?: (recorded: RecordedEvent) => boolean;
  /** What the fold takes of a stored record; throws `PoisonEventError` when it cannot be folded. */
  decode(recorded: RecordedEvent): Event;
  /**
   * Applies the events in the caller's transaction; the caller's `search_path` chooses which tables.
   * An event the fold cannot apply is returned, not thrown, so the rest of the batch goes on.
   */
  apply(client: pg.ClientBase, events: readonly Event[]): Promise<readonly RejectedEvent[]>;
}

/** Every stream prefix a projection folds records of. */
export const streamPrefixesOf = (projection: Projection): readonly string[] => [
  projection.streamPrefix,
  ...(projection.otherStreamPrefixes ?? []),
];

/** Whether a stream is one whose records the projection folds (or passes by with `folds`). */
export const foldsStream = (projection: Projection, streamName: string): boolean =>
  streamName.startsWith(projection.streamPrefix) ||
  (projection.otherStreamPrefixes?.some((prefix) => streamName.startsWith(prefix)) ?? false);
