/**
 * The one interface through which the projector's runner knows a projection: its name, the tables
 * it owns, and how to apply a batch of decoded call events inside the runner's transaction. Each
 * projection is a folder here: `read-model.ts` (its drizzle table and pure fold) and
 * `projection.ts` (how its rows are written: it loads the rows a batch touches once, folds in
 * memory and writes the changes back with multi-row statements).
 */
import type pg from 'pg';
import type { CallEvent } from '../src/archive/call-event.ts';

export interface RejectedEvent {
  readonly eventId: string;
  readonly error: string;
}

export interface Projection {
  readonly name: string;
  /** The read-model tables it alone writes; a rebuild replaces them together. */
  readonly tables: readonly string[];
  /**
   * Applies the events in the caller's transaction; the caller's `search_path` chooses which tables.
   * An event the fold cannot apply is returned, not thrown, so the rest of the batch goes on.
   */
  apply(client: pg.ClientBase, events: readonly CallEvent[]): Promise<readonly RejectedEvent[]>;
}
