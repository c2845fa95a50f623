/**
 * Which projections this process leads. Each projection has a leader lock (a PostgreSQL advisory
 * lock) held by a database session of its own, which also does all of the projection's writes, so
 * nothing is written without the lock; ending the session gives the leadership up, so a standby may
 * take over. Sessions of projections standing by are kept, to try the lock again without
 * reconnecting.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type pg from 'pg';
import type { Logger } from '../logger.ts';
import { tryLock } from './checkpoints.ts';
import type { Projection } from '../../projections/projection.ts';

export type RunnerRole = 'starting' | 'standby' | 'active' | 'stopped';

export interface Election {
  /** The projections led, each with the session holding its leader lock. */
  readonly sessions: ReadonlyMap<Projection, pg.PoolClient>;
  readonly role: (projection: Projection) => RunnerRole;
  /** When the locks were last tried, by the clock given. */
  readonly lastElection: number;
  /** Some projection is led by another process (or not yet by anyone). */
  readonly standingBy: () => boolean;
  /** Tries the leader lock of every projection not yet led; true when one more was won. */
  readonly elect: () => Promise<boolean>;
  /** Gives up a projection's lock (and its standby session), and sets its role. */
  readonly resign: (projection: Projection, role: RunnerRole) => void;
  /** Resigns every projection whose session no longer answers: it has lost its lock with it. */
  readonly dropLostSessions: () => Promise<void>;
}

const sessionCheckTimeoutMs = 10_000;

export const createElection = (
  projections: readonly Projection[],
  dependencies: {
    readonly pool: pg.Pool;
    readonly logger: Logger;
    readonly clock: () => Date;
    readonly log: (projection: Projection) => Logger;
    /** Whether the process is stopping: no lock is tried then. */
    readonly stopping: () => boolean;
  },
): Election => {
  const { pool, logger, clock, log } = dependencies;
  const roles = new Map<Projection, RunnerRole>(projections.map((projection) => [projection, 'starting']));
  const sessions = new Map<Projection, pg.PoolClient>();
  const candidates = new Map<Projection, pg.PoolClient>();
  let lastElection = 0;

  // A checked-out client has no error listener of the pool's; without one a lost connection would
  // crash the process instead of failing the next query.
  const onSessionError = (error: Error) => logger.warn({ err: error }, 'projector database session lost');

  /** Destroyed, never returned to the pool: ending the session is what frees its leader lock. */
  const endSession = (client: pg.PoolClient) => {
    client.removeListener('error', onSessionError);
    client.release(true);
  };

  /** Whether the session still answers (a connection lost to a dead network may never fail by itself). */
  const answers = async (client: pg.ClientBase): Promise<boolean> => {
    const answered = new AbortController();
    try {
      return await Promise.race([
        client.query('SELECT 1').then(() => true),
        delay(sessionCheckTimeoutMs, false, { signal: answered.signal }),
      ]);
    } catch {
      return false;
    } finally {
      answered.abort();
    }
  };

  const resign = (projection: Projection, role: RunnerRole) => {
    for (const held of [sessions, candidates]) {
      const client = held.get(projection);
      held.delete(projection);
      if (client !== undefined) endSession(client);
    }
    roles.set(projection, role);
  };

  const elect = async (): Promise<boolean> => {
    lastElection = clock().getTime();
    let won = false;
    for (const projection of projections) {
      if (sessions.has(projection) || dependencies.stopping()) continue;
      let client = candidates.get(projection);
      if (client === undefined) {
        client = await pool.connect();
        client.on('error', onSessionError);
      }
      candidates.delete(projection);
      let leading = false;
      try {
        leading = await tryLock(client, 'leader', projection.name);
      } catch (error) {
        endSession(client);
        throw error;
      }
      if (!leading) candidates.set(projection, client);
      if (leading) {
        sessions.set(projection, client);
        roles.set(projection, 'active');
        log(projection).info('running projection');
        won = true;
      } else if (roles.get(projection) !== 'standby') {
        roles.set(projection, 'standby');
        log(projection).info('another process runs this projection; standing by');
      }
    }
    return won;
  };

  const dropLostSessions = async (): Promise<void> => {
    for (const [projection, client] of [...sessions]) {
      if (!(await answers(client))) {
        log(projection).warn('projector database session lost; standing for election again');
        resign(projection, 'starting');
      }
    }
  };

  return {
    sessions,
    role: (projection) => roles.get(projection) ?? 'stopped',
    get lastElection() {
      return lastElection;
    },
    standingBy: () => sessions.size < projections.length,
    elect,
    resign,
    dropLostSessions,
  };
};
