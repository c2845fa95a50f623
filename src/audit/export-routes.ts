/**
 * `GET /exports/terminations.csv`: the terminations CSV (columns and escaping rules in
 * `terminations-csv.ts`), streamed from PostgreSQL to the client with backpressure, constant memory
 * at any size. Each export holds one database connection while it runs, so only a few may run at
 * once; more get a 503 with `Retry-After` rather than starving the rest of the API.
 */
import { finished } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { AppDependencies } from '../app.ts';
import { UnavailableError } from '../errors.ts';
import { StreamedBody, auditSecurity, problemResponses } from './api-docs.ts';
import { CallOutcome } from './call-queries.ts';
import { IsoDateTime, TextFilter, parseTimeRange } from './parameters.ts';
import { manifestTrailer, withManifestTrailer } from './manifest-trailer.ts';
import { fromReadModels } from './read-models.ts';
import { openTerminationsCsv, terminationsCsvColumns, type ExportOutcome } from './terminations-csv.ts';

const exportKind = 'terminations';

/** Exports running at once per process; each holds a pooled connection for its whole duration. */
export const maxConcurrentExports = 2;

const TerminationsQuery = Type.Object(
  {
    from: Type.Optional(IsoDateTime('Only calls that ended at or after this')),
    to: Type.Optional(IsoDateTime('Only calls that ended before this (exclusive)')),
    outcome: Type.Optional(CallOutcome),
    assistant: Type.Optional(TextFilter("The assistant's number, exactly")),
  },
  { additionalProperties: false },
);

export const exportRoutes: FastifyPluginAsyncTypebox<AppDependencies> = async (app, dependencies) => {
  const { metrics } = dependencies;
  let running = 0;

  app.get(
    '/exports/terminations.csv',
    {
      schema: {
        summary: 'Terminations as CSV (RFC 4180)',
        description:
          'One row per ended call, ordered by end time then call id. UTF-8, CRLF row ends, a header ' +
          `row, columns: ${terminationsCsvColumns.join(', ')}. Times are ISO 8601 UTC with ` +
          'milliseconds. Text cells starting with =, +, -, @, tab or CR get a leading apostrophe so ' +
          'spreadsheets do not run them as formulas; E.164 numbers (+ and digits) in caller and ' +
          'assistant are kept verbatim.',
        tags: ['exports'],
        security: auditSecurity,
        querystring: TerminationsQuery,
        response: {
          200: {
            description: `The CSV, streamed; with a signed manifest in the \`${manifestTrailer}\` trailer when the server holds the sealing key`,
            content: { 'text/csv': { schema: StreamedBody } },
          },
          ...problemResponses,
        },
      },
    },
    async (request, reply) => {
      const { from, to } = parseTimeRange(request.query);
      if (running >= maxConcurrentExports) {
        throw new UnavailableError(`${maxConcurrentExports} exports are already running; retry later`, 10);
      }
      running += 1;
      const settle = (outcome: ExportOutcome, rows: number, error?: unknown) => {
        running -= 1;
        metrics.exports.inc({ kind: exportKind, outcome });
        metrics.exportedRows.inc({ kind: exportKind }, rows);
        if (outcome === 'failed') request.log.error({ err: error, rows }, 'terminations export failed');
        else request.log.info({ rows, outcome }, 'terminations export ended');
      };
      let csv;
      try {
        csv = await fromReadModels(() =>
          openTerminationsCsv(dependencies.database.pool, {
            from,
            to,
            outcome: request.query.outcome,
            assistant: request.query.assistant,
          }),
        );
      } catch (error) {
        settle('failed', 0, error);
        throw error;
      }
      const rowsOf = csv.finished;
      request.accessCount = async () => (await rowsOf).rows;
      // Completed only when the client got every byte; the query may finish before that.
      const delivered = new Promise<boolean>((resolve) => finished(reply.raw, (error) => resolve(!error)));
      // Not awaited (the reply streams meanwhile), so its failure is logged here, never unhandled.
      Promise.all([csv.finished, delivered])
        .then(([query, complete]) =>
          settle(
            query.outcome === 'failed' ? 'failed' : complete ? 'completed' : 'aborted',
            query.rows,
            query.error,
          ),
        )
        .catch((error: unknown) =>
          request.log.error({ err: error }, 'terminations export bookkeeping failed'),
        );
      return reply
        .header('content-type', 'text/csv; charset=utf-8; header=present')
        .header('content-disposition', 'attachment; filename="terminations.csv"')
        .send(
          withManifestTrailer(reply, csv.stream, {
            kind: 'terminations-csv',
            query: {
              from: request.query.from ?? null,
              to: request.query.to ?? null,
              outcome: request.query.outcome ?? null,
              assistant: request.query.assistant ?? null,
            },
            key: dependencies.sealingKey,
            eventStore: dependencies.eventStore,
            clock: dependencies.clock,
            count: async () => (await csv.finished).rows,
          }),
        );
    },
  );
};
