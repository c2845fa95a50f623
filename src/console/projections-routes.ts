/**
 * The console's Projections page (`/console/projections`): each projection's checkpoint, lag and
 * projector, and the dead letters. The lag is the figure `/readyz` reports: this process's own when
 * it runs the projector, otherwise measured the same way (at a cost bounded by a count of events,
 * whatever the archive's size), so the page works on an ingest-only process too.
 */
import { and, desc, eq, lt, sql } from 'drizzle-orm';
import type { AppDependencies } from '../app.ts';
import type { Problem } from '../archive/archived-event.ts';
import { parseLimit } from '../audit/parameters.ts';
import { fromReadModels } from '../audit/read-models.ts';
import { formatPosition, type GlobalPosition } from '../event-store/event-store.ts';
import { InvalidArgumentError } from '../errors.ts';
import { lockArguments } from '../projector/checkpoints.ts';
import { defaultProjectorOptions } from '../projector/projector.ts';
import { measureLag, readStoreHead } from '../projector/lag.ts';
import { projectionCheckpoints, projectionDeadLetters } from '../projector/schema.ts';
import type { ProjectionStatus } from '../projector/status.ts';
import { projectionNames, projections } from '../../projections/registry.ts';
import { readViewQuery } from './view-query.ts';
import { csrfToken } from './session.ts';
import { page } from './layout.ts';
import { projectionsPage, type DeadLetterView, type ProjectionOverview } from './projections-page.ts';
import type { ConsolePageTools, RouteHost } from './quarantine-routes.ts';

const defaultPageSize = 50;
const queryNames = ['projection', 'limit', 'cursor'];

interface DeadLettersQuery {
  readonly query: Record<string, string>;
  readonly projection: string | undefined;
  readonly limit: number;
  readonly beforeId: bigint | undefined;
  readonly errors: Problem[];
}

const parseQuery = (raw: Readonly<Record<string, unknown>>): DeadLettersQuery => {
  const read = readViewQuery(raw, { known: queryNames });
  const { query } = read;
  const errors = [...read.errors];
  const projection = query['projection'];
  if (projection !== undefined && !projectionNames.includes(projection)) {
    errors.push({ field: 'querystring/projection', message: `must be one of ${projectionNames.join(', ')}` });
  }
  const cursor = query['cursor'];
  if (cursor !== undefined && !/^[1-9][0-9]{0,18}$/.test(cursor)) {
    errors.push({
      field: 'querystring/cursor',
      message: 'must be the id of a dead letter, from a Next link',
    });
  }
  let limit = defaultPageSize;
  try {
    if (query['limit'] !== undefined) limit = parseLimit(query['limit']);
  } catch (error) {
    if (!(error instanceof InvalidArgumentError)) throw error;
    errors.push(...error.problems);
  }
  return {
    query,
    projection: errors.length > 0 ? undefined : projection,
    limit,
    beforeId: errors.length > 0 || cursor === undefined ? undefined : BigInt(cursor),
    errors,
  };
};

export const projectionsPages = (
  app: RouteHost,
  dependencies: AppDependencies,
  { sendPage, signedIn, mayOpen }: ConsolePageTools,
): void => {
  const { db } = dependencies.database;

  /** Whether a session holds each projection's leader lock: a projector is running it. */
  const activeProjections = async (): Promise<Set<string>> => {
    const active = new Set<string>();
    for (const projection of projections) {
      const [lockClass, name] = lockArguments('leader', projection.name);
      const held = await db.execute<{ held: boolean }>(
        sql`SELECT EXISTS (
              SELECT 1 FROM pg_locks
              WHERE locktype = 'advisory' AND granted
                AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND classid = ${lockClass}::int::oid AND objid = hashtext(${name})::oid AND objsubid = 2
            ) AS held`,
      );
      if (held.rows[0]?.held === true) active.add(projection.name);
    }
    return active;
  };

  /** Lag as `/readyz` reports it; undefined for a projection when the store could not be read. */
  const lags = async (
    checkpoints: ReadonlyMap<string, GlobalPosition>,
  ): Promise<Map<string, ProjectionStatus | undefined>> => {
    const result = new Map<string, ProjectionStatus | undefined>();
    const own = dependencies.projections?.status() ?? [];
    for (const status of own) result.set(status.projection, status);
    const missing = projections.filter((projection) => !result.has(projection.name));
    if (missing.length === 0) return result;
    try {
      const head = await readStoreHead(dependencies.eventStore);
      const now = dependencies.clock();
      for (const projection of missing) {
        const lag = await measureLag(dependencies.eventStore, {
          streamPrefixes: defaultProjectorOptions.streamPrefixes,
          checkpoint: checkpoints.get(projection.name),
          now,
          countLimit: defaultProjectorOptions.lagCountLimit,
          head,
        });
        result.set(projection.name, { projection: projection.name, ...lag });
      }
    } catch {
      for (const projection of missing) result.set(projection.name, undefined);
    }
    return result;
  };

  app.get('/console/projections', { schema: { hide: true } }, async (request, reply) => {
    const token = await signedIn(request, reply);
    if (token === undefined) return reply;
    const parsed = parseQuery(request.query as Record<string, unknown>);
    const [checkpointRows, counts, active, letters] = await fromReadModels(() =>
      Promise.all([
        db.select().from(projectionCheckpoints),
        db
          .select({ projection: projectionDeadLetters.projection, count: sql<string>`count(*)` })
          .from(projectionDeadLetters)
          .groupBy(projectionDeadLetters.projection),
        activeProjections(),
        parsed.errors.length > 0
          ? Promise.resolve([])
          : db
              .select()
              .from(projectionDeadLetters)
              .where(
                and(
                  parsed.projection === undefined
                    ? undefined
                    : eq(projectionDeadLetters.projection, parsed.projection),
                  parsed.beforeId === undefined ? undefined : lt(projectionDeadLetters.id, parsed.beforeId),
                ),
              )
              .orderBy(desc(projectionDeadLetters.id))
              .limit(parsed.limit + 1),
      ]),
    );
    const checkpoints = new Map(
      checkpointRows.map((row) => [
        row.projection,
        { commit: row.commitPosition, prepare: row.preparePosition },
      ]),
    );
    const measured = await lags(checkpoints);
    const overviews: ProjectionOverview[] = projections.map((projection) => {
      const row = checkpointRows.find((each) => each.projection === projection.name);
      const lag = measured.get(projection.name);
      return {
        projection: projection.name,
        tables: projection.tables,
        streamPrefix: projection.streamPrefix,
        checkpoint: row ? formatPosition({ commit: row.commitPosition, prepare: row.preparePosition }) : null,
        checkpointUpdatedAt: row ? row.updatedAt.toISOString() : null,
        active: active.has(projection.name),
        lag: lag && { caughtUp: lag.caughtUp, lagEvents: lag.lagEvents, lagSeconds: lag.lagSeconds },
        deadLetters: Number(counts.find((each) => each.projection === projection.name)?.count ?? 0),
      };
    });
    const shown = letters.slice(0, parsed.limit);
    const deadLetters: DeadLetterView[] = shown.map((letter) => ({
      id: letter.id.toString(),
      projection: letter.projection,
      eventId: letter.eventId,
      streamName: letter.streamName,
      streamRevision: letter.streamRevision.toString(),
      position: formatPosition({ commit: letter.commitPosition, prepare: letter.preparePosition }),
      eventType: letter.eventType,
      error: letter.error,
      recordedAt: letter.recordedAt.toISOString(),
    }));
    const last = shown.at(-1);
    return sendPage(
      reply,
      page({
        title: 'Projections',
        section: 'projections',
        csrf: csrfToken(token),
        mayOpen: mayOpen(request),
        body: projectionsPage(
          {
            projections: overviews,
            deadLetters,
            query: parsed.query,
            nextCursor: letters.length > parsed.limit && last ? last.id.toString() : undefined,
            firstPage: parsed.beforeId === undefined,
            errors: parsed.errors,
            measuredAt: dependencies.clock().toISOString(),
          },
          projectionNames,
        ),
      }),
      parsed.errors.length > 0 ? 400 : 200,
    );
  });
};
