/**
 * Errors as `application/problem+json` (RFC 9457): the few typed errors routes throw, and the one
 * place that maps every error (the domain errors of `errors.ts` included) to a response. A 4xx names the field and why; a 5xx never shows
 * internals.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import Type from 'typebox';
import { Problem } from '../archive/archived-event.ts';
import { InvalidArgumentError, NotFoundError, UnavailableError } from '../errors.ts';
import { EventStoreUnavailableError } from '../event-store/event-store.ts';
import { isUnavailable as isPostgresUnavailable } from '../event-store/postgres/errors.ts';

/** A read-model query that failed because PostgreSQL did not answer in time, or at all. */
const isDatabaseUnavailable = (error: unknown, depth = 0): boolean =>
  error instanceof Error &&
  depth < 4 &&
  (isPostgresUnavailable(error) || isDatabaseUnavailable(error.cause, depth + 1));

export const ProblemDetails = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  detail: Type.Optional(Type.String()),
  instance: Type.Optional(Type.String()),
  errors: Type.Optional(Type.Array(Problem)),
});
export type ProblemDetails = Type.Static<typeof ProblemDetails>;

/** An error with a status and, for validation errors, the fields at fault. */
export class HttpProblem extends Error {
  override readonly name = 'HttpProblem';
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail?: string,
    readonly errors?: readonly Problem[],
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(detail ?? title);
  }
}

export const badRequest = (errors: readonly Problem[]): HttpProblem =>
  new HttpProblem(400, 'Bad Request', errors.map((e) => `${e.field}: ${e.message}`).join('; '), errors);

export const unauthorized = (detail: string): HttpProblem =>
  new HttpProblem(401, 'Unauthorized', detail, undefined, { 'www-authenticate': 'Bearer' });

export const serviceUnavailable = (detail: string, retryAfterSeconds: number): HttpProblem =>
  new HttpProblem(503, 'Service Unavailable', detail, undefined, {
    'retry-after': String(retryAfterSeconds),
  });

const statusTitles: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  503: 'Service Unavailable',
};

/** The request's path, except that a route with a `:token` parameter shows its pattern: a token is a secret. */
const instanceOf = (request: FastifyRequest): string => {
  const pattern = request.routeOptions.url;
  return pattern?.includes(':token') ? pattern : (request.url.split('?')[0] ?? '/');
};

export const sendProblem = (reply: FastifyReply, problem: HttpProblem): FastifyReply => {
  const body: ProblemDetails = {
    type: 'about:blank',
    title: problem.title,
    status: problem.status,
    ...(problem.detail === undefined ? {} : { detail: problem.detail }),
    instance: instanceOf(reply.request),
    ...(problem.errors === undefined ? {} : { errors: [...problem.errors] }),
  };
  return reply.code(problem.status).headers(problem.headers).type('application/problem+json').send(body);
};

/** Fastify's own validation errors name the field as a JSON pointer relative to the part checked. */
const fromValidation = (error: FastifyError): HttpProblem => {
  const errors = (error.validation ?? []).map((v) => ({
    field: `${error.validationContext ?? 'request'}${v.instancePath || ''}${
      v.keyword === 'required' && typeof v.params['missingProperty'] === 'string'
        ? `/${v.params['missingProperty']}`
        : v.keyword === 'additionalProperties' && typeof v.params['additionalProperty'] === 'string'
          ? `/${v.params['additionalProperty']}`
          : ''
    }`,
    message: v.message ?? 'is invalid',
  }));
  return badRequest(errors);
};

/** Registers the error and not-found handlers. Call once, on the root instance. */
export const registerProblemHandlers = (app: FastifyInstance): void => {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof HttpProblem) {
      if (error.status >= 500) request.log.warn({ err: error }, error.title);
      return sendProblem(reply, error);
    }
    if (error instanceof InvalidArgumentError) return sendProblem(reply, badRequest(error.problems));
    if (error instanceof NotFoundError) {
      return sendProblem(reply, new HttpProblem(404, 'Not Found', error.message));
    }
    if (error instanceof UnavailableError) {
      request.log.warn({ err: error }, 'Service Unavailable');
      return sendProblem(reply, serviceUnavailable(error.message, error.retryAfterSeconds));
    }
    if (error instanceof EventStoreUnavailableError) {
      request.log.error({ err: error }, 'event store unavailable');
      return sendProblem(reply, serviceUnavailable('the event store is unavailable; retry later', 5));
    }
    if (error.validation) {
      return sendProblem(reply, fromValidation(error));
    }
    if (isDatabaseUnavailable(error)) {
      request.log.error({ err: error }, 'database unavailable');
      return sendProblem(reply, serviceUnavailable('the database is unavailable; retry later', 5));
    }
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      return sendProblem(
        reply,
        new HttpProblem(status, statusTitles[status] ?? 'Client Error', error.message),
      );
    }
    request.log.error({ err: error, request }, 'unhandled error');
    return sendProblem(
      reply,
      new HttpProblem(500, 'Internal Server Error', 'the request could not be completed'),
    );
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      reply,
      new HttpProblem(404, 'Not Found', `no route for ${request.method} ${request.url.split('?')[0]}`),
    ),
  );
};
