/**
 * Global positions in the PostgreSQL event store: one `bigint` per event (commit = prepare), and
 * the translation of the port's (commit, prepare) pairs, which may come from anywhere, into bounds on
 * that column. Kept pure so the boundary rules (inclusive `from`, exclusive `after`) are testable.
 */
import type { GlobalPosition } from '../event-store.ts';

/** The largest value a Postgres `bigint` holds; no stored position exceeds it. */
export const maxStoredPosition = (1n << 63n) - 1n;

export const positionOf = (stored: bigint): GlobalPosition => ({ commit: stored, prepare: stored });

/**
 * The smallest stored position p with (p, p) >= `from`; undefined when none can exist. Reading
 * forwards from P includes P.
 */
export const firstAtOrAfter = (from: GlobalPosition | undefined): bigint | undefined => {
  if (from === undefined) return 0n;
  const least = from.commit + (from.prepare > from.commit ? 1n : 0n);
  return least > maxStoredPosition ? undefined : least;
};

/**
 * The largest stored position p with (p, p) <= `from`; undefined when none can exist. Reading
 * backwards from P includes P; without `from`, backwards starts at the end.
 */
export const lastAtOrBefore = (from: GlobalPosition | undefined): bigint | undefined => {
  if (from === undefined) return maxStoredPosition;
  const greatest = from.commit - (from.prepare < from.commit ? 1n : 0n);
  if (greatest < 0n) return undefined;
  return greatest > maxStoredPosition ? maxStoredPosition : greatest;
};

/**
 * A bound b such that a stored position p comes strictly after `after` exactly when p > b.
 * Subscribing from P excludes P.
 */
export const exclusiveLowerBound = (after: GlobalPosition | undefined): bigint => {
  if (after === undefined) return -1n;
  const bound = after.prepare < after.commit ? after.commit - 1n : after.commit;
  return bound > maxStoredPosition ? maxStoredPosition : bound;
};
