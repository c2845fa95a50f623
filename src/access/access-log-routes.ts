/**
 * `GET /access-log`: the access log read back from its day streams, oldest first, keyset-paged by
 * (day, revision). Filters: a time range (default: the last day), the token's name and the route
 * pattern. Each request reads at most `maxScanned` events, so a filter that matches rarely costs a
 * bounded amount per page: the page may then be short, with a cursor to go on from.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import Value from 'typebox/value';
import type { AppDependencies } from '../app.ts';
import { accessStreamPrefix } from '../archive/streams.ts';
import { auditSecurity, problemResponses } from '../audit/api-docs.ts';
import {
  IsoDateTime,
  Limit,
  decodeCursor,
  encodeCursor,
  parseLimit,
  parseTimeRange,
} from '../audit/parameters.ts';
import { invalidArgument } from '../errors.ts';
import { formatPosition, type EventStore } from '../event-store/event-store.ts';
import { AccessRecord, accessEventType } from './access-log.ts';

const dayMs = 86_400_000;
/** Days one query may span: a year of day streams, most of them read only when they hold entries. */
const maxDays = 366;
const maxScanned = 10_000;

export const AccessLogQuery = Type.Object(
  {
    from: Type.Optional(IsoDateTime('Entries at or after this (default: a day before `to`)')),
    to: Type.Optional(IsoDateTime('Entries before this (exclusive; default: up to now, included)')),
    token: Type.Optional(
      Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', description: "A token's name" }),
    ),
    route: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        pattern: '^/[^\\u0000-\\u001f]*$',
        description: 'A route pattern as the entries name it, e.g. `/calls/:callId`',
      }),
    ),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Type.String({ description: 'The `nextCursor` of the previous page' })),
  },
  { additionalProperties: false },
);

export const AccessLogEntry = Type.Intersect([
  AccessRecord,
  Type.Object({ stream: Type.String(), position: Type.String() }),
]);

const AccessLogPage = Type.Object({
  entries: Type.Array(AccessLogEntry),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
});

const CursorKey = Type.Tuple([
  Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}$' }),
  Type.String({ pattern: '^\\d{1,20}$' }),
]);

const utcDay = (at: Date): string => at.toISOString().slice(0, 10);

export type AccessLogQuery = Type.Static<typeof AccessLogQuery>;
export type AccessLogEntry = Type.Static<typeof AccessLogEntry>;

/**
 * One page of the access log for a checked query (the API's and the console page's). Throws
 * `InvalidArgumentError` naming the parameter for a range that is empty or too long, or a bad cursor.
 */
export const readAccessLog = async (
  eventStore: EventStore,
  now: Date,
  query: AccessLogQuery,
): Promise<{ entries: AccessLogEntry[]; nextCursor: string | null }> => {
  const range = parseTimeRange(query);
  // Up to and including this instant.
  const to = range.to ?? new Date(now.getTime() + 1);
  const from = range.from ?? new Date(to.getTime() - dayMs);
  if (from.getTime() >= to.getTime()) {
    throw invalidArgument('querystring/from', 'must be before to');
  }
  if (to.getTime() - from.getTime() > maxDays * dayMs) {
    throw invalidArgument('querystring/from', `the range may span at most ${maxDays} days`);
  }
  const limit = parseLimit(query.limit);
  const cursor = decodeCursor(query.cursor, CursorKey);
  const lastDay = utcDay(new Date(to.getTime() - 1));
  let day = cursor?.[0] ?? utcDay(from);
  let fromRevision = cursor === undefined ? 0n : BigInt(cursor[1]) + 1n;

  const entries: AccessLogEntry[] = [];
  let scanned = 0;
  let resumeAt: [string, string] | undefined;
  scan: while (day <= lastDay) {
    const stream = `${accessStreamPrefix}${day}`;
    for await (const event of eventStore.readStream(stream, { fromRevision })) {
      scanned += 1;
      if (event.type === accessEventType && Value.Check(AccessRecord, event.data)) {
        const record = event.data;
        const at = new Date(record.at).getTime();
        if (
          at >= from.getTime() &&
          at < to.getTime() &&
          (query.token === undefined || record.token === query.token) &&
          (query.route === undefined || record.route === query.route)
        ) {
          entries.push({ ...record, stream, position: formatPosition(event.position) });
        }
      }
      if (entries.length >= limit || scanned >= maxScanned) {
        resumeAt = [day, event.revision.toString()];
        break scan;
      }
    }
    day = utcDay(new Date(Date.parse(`${day}T00:00:00Z`) + dayMs));
    fromRevision = 0n;
  }
  return { entries, nextCursor: resumeAt === undefined ? null : encodeCursor(resumeAt) };
};

export const accessLogRoutes: FastifyPluginAsyncTypebox<AppDependencies> = async (app, dependencies) => {
  app.get(
    '/access-log',
    {
      schema: {
        summary: 'Who read what: the access log, oldest first (admin)',
        description:
          'Every audit API request and console page that read archive data, every export, replay ' +
          'and delivery control, by a known token: its name and role, the route, the query, the ' +
          'status, the result count when known, the bytes sent, the source address and the time. ' +
          `At most ${maxScanned} entries are read per request; a page can then be short, and ` +
          '`nextCursor` goes on from there.',
        tags: ['access'],
        security: auditSecurity,
        querystring: AccessLogQuery,
        response: { 200: AccessLogPage, ...problemResponses },
      },
    },
    async (request) => {
      const page = await readAccessLog(dependencies.eventStore, dependencies.clock(), request.query);
      request.accessCount = page.entries.length;
      return page;
    },
  );
};
