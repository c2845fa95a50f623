/**
 * Who may call what, applied to every route from the one table in `route-scopes.ts`:
 *
 * - a route the table does not know cannot be registered (start-up stops naming it);
 * - a public route passes; any other needs a bearer token (401 without one, 403 for an unknown one)
 *   whose role grants the route's scope (403 naming the missing scope and the role otherwise);
 * - console pages sign in instead of answering 401: they call `admit` themselves with the session's
 *   token (see `src/console/routes.ts`), against the same table.
 *
 * The token's name (never the token) goes on the request's log lines, in
 * `calltrail_api_requests_total{token,outcome}`, and, for routes the table marks `recorded`, in the
 * access log (`access-log.ts`) once the answer has gone out, with the bytes sent and, where the
 * route sets `request.accessCount`, how many items it held.
 */
import { Readable, Transform, pipeline } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Counter } from 'prom-client';
import type { ApiToken } from './api-tokens.ts';
import { accessOf, routeKey, type RouteAccess } from './route-scopes.ts';
import { grants } from './scopes.ts';
import { createAuthenticator, type TokenIdentity } from '../audit/authentication.ts';
import { HttpProblem } from '../http/problem.ts';
import type { EventStore } from '../event-store/event-store.ts';
import type { Metrics } from '../metrics.ts';
import {
  createAccessLog,
  defaultAccessLogOptions,
  type AccessLog,
  type AccessLogOptions,
} from './access-log.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** Whose token the request carried, once it was accepted; null before or without one. */
    apiToken: TokenIdentity | null;
    /**
     * How many items (calls, events, rows) the answer held, for the access log: a number, or a
     * function asked once the answer has gone out (a streamed one knows only then).
     */
    accessCount: number | (() => number | Promise<number>) | null;
    /** Body bytes sent, counted as they go (access-logged routes only). */
    accessBytes: number | null;
    /** When an access-logged request arrived, by the app's clock. */
    accessAt: Date | null;
  }
  interface FastifyInstance {
    readonly accessControl: AccessControl;
  }
}

export interface AccessControl {
  /** The identity of a token, or undefined when it is not configured (constant time). */
  identify(token: string): TokenIdentity | undefined;
  /**
   * Admits a request made with `identity` to its route: throws 403 naming the scope the role lacks,
   * otherwise records the identity on the request and its log lines.
   */
  admit(request: FastifyRequest, reply: FastifyReply, identity: TokenIdentity): void;
  /** Whether `identity` may call `method url` (for offering only the controls a role may use). */
  allows(identity: TokenIdentity, method: string, url: string): boolean;
  /** Every route registered after this plugin, with what it needs: what the role tests iterate. */
  readonly routes: readonly { readonly method: string; readonly url: string; readonly access: RouteAccess }[];
}

export class UnscopedRouteError extends Error {
  override readonly name = 'UnscopedRouteError';
}

const methodsOf = (method: string | readonly string[]): readonly string[] =>
  typeof method === 'string' ? [method] : method;

export interface AuthorizationOptions {
  readonly apiTokens: readonly ApiToken[];
  readonly metrics: Metrics;
  readonly eventStore: EventStore;
  readonly accessLog?: Partial<AccessLogOptions>;
  /** How long closing may wait for buffered access events to be written. */
  readonly closeTimeoutMs: number;
  readonly clock: () => Date;
}

const maxQueryNames = 20;
const maxQueryValueLength = 256;
const credentialName = /token|secret|password|key|auth/i;

/** The query as the access log keeps it: bounded, and never a value under a credential's name. */
const queryOf = (query: unknown): Record<string, string | string[]> => {
  const kept: Record<string, string | string[]> = {};
  if (typeof query !== 'object' || query === null) return kept;
  const bounded = (value: unknown): string => String(value).slice(0, maxQueryValueLength);
  for (const [name, value] of Object.entries(query).slice(0, maxQueryNames)) {
    const shownName = name.slice(0, 64);
    if (credentialName.test(name)) kept[shownName] = '[redacted]';
    else kept[shownName] = Array.isArray(value) ? value.slice(0, 10).map(bounded) : bounded(value);
  }
  return kept;
};

const countBytes = (request: FastifyRequest, payload: unknown): unknown => {
  if (typeof payload === 'string') request.accessBytes = Buffer.byteLength(payload);
  else if (Buffer.isBuffer(payload)) request.accessBytes = payload.length;
  else if (payload instanceof Readable) {
    request.accessBytes = 0;
    const counter = new Transform({
      transform(chunk: Buffer | string, _encoding, done) {
        request.accessBytes = (request.accessBytes ?? 0) + Buffer.byteLength(chunk);
        done(null, chunk);
      },
    });
    // Both ways: a client that goes away must stop the source (a database cursor, a store read).
    pipeline(payload, counter, () => {});
    return counter;
  }
  return payload;
};

export const authorization = fp<AuthorizationOptions>(
  async (app: FastifyInstance, options) => {
    const authenticate = createAuthenticator(options.apiTokens);
    const accessLog: AccessLog = createAccessLog(
      { eventStore: options.eventStore, logger: app.log, metrics: options.metrics },
      { ...defaultAccessLogOptions, ...options.accessLog },
    );
    app.addHook('onClose', () => accessLog.close(options.closeTimeoutMs));
    const requests = new Counter({
      name: 'calltrail_api_requests_total',
      help: 'Authenticated API and console requests by token name and outcome (allowed, forbidden: the role lacks the scope, unknown-token)',
      labelNames: ['token', 'outcome'] as const,
      registers: [options.metrics.registry],
    });
    const routes: { method: string; url: string; access: RouteAccess }[] = [];

    app.decorateRequest('apiToken', null);
    app.decorateRequest('accessCount', null);
    app.decorateRequest('accessBytes', null);
    app.decorateRequest('accessAt', null);

    app.addHook('onRoute', (route) => {
      for (const method of methodsOf(route.method)) {
        const access = accessOf(method, route.url);
        if (access === undefined) {
          throw new UnscopedRouteError(
            `${routeKey(method, route.url)} has no entry in the route table (src/access/route-scopes.ts)`,
          );
        }
        routes.push({ method, url: route.url, access });
      }
    });

    const accessOfRequest = (request: FastifyRequest): RouteAccess | undefined => {
      const url = request.routeOptions.url;
      return url === undefined ? undefined : accessOf(request.method, url);
    };

    const recorded = new WeakSet<FastifyRequest>();
    const recordAccess = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
      const identity = request.apiToken;
      const url = request.routeOptions.url;
      if (identity === null || url === undefined || accessOfRequest(request)?.recorded !== true) return;
      if (recorded.has(request)) return;
      recorded.add(request);
      let resultCount: number | undefined;
      try {
        const count = request.accessCount;
        resultCount = typeof count === 'function' ? await count() : (count ?? undefined);
      } catch {
        resultCount = undefined;
      }
      const queryAt = request.url.indexOf('?');
      accessLog.record({
        at: (request.accessAt ?? options.clock()).toISOString(),
        token: identity.name,
        role: identity.role,
        method: request.method,
        route: url,
        path: queryAt === -1 ? request.url : request.url.slice(0, queryAt),
        query: queryOf(request.query),
        status: reply.statusCode,
        ...(resultCount === undefined ? {} : { resultCount }),
        ...(request.accessBytes === null ? {} : { bytes: request.accessBytes }),
        sourceAddress: request.ip,
        requestId: request.id,
      });
    };

    const admit = (request: FastifyRequest, reply: FastifyReply, identity: TokenIdentity): void => {
      const access = accessOfRequest(request);
      request.apiToken = identity;
      if (access?.recorded === true) {
        reply.raw.once('close', () => {
          recordAccess(request, reply).catch((error: unknown) =>
            request.log.error({ err: error }, 'access log record failed'),
          );
        });
      }
      request.log = request.log.child({ token: identity.name });
      // Fastify writes "request completed" through the reply's logger.
      reply.log = request.log;
      if (access !== undefined && access.scope !== 'public' && !grants(identity.role, access.scope)) {
        requests.inc({ token: identity.name, outcome: 'forbidden' });
        throw new HttpProblem(
          403,
          'Forbidden',
          `this needs the scope ${access.scope}, which the role ${identity.role} of the token ${identity.name} does not have`,
          [{ field: 'authorization', message: `role ${identity.role} lacks scope ${access.scope}` }],
        );
      }
      requests.inc({ token: identity.name, outcome: 'allowed' });
    };

    const control: AccessControl = {
      identify: (token) => authenticate.identify(token),
      admit,
      allows: (identity, method, url) => {
        const access = accessOf(method, url);
        return access !== undefined && (access.scope === 'public' || grants(identity.role, access.scope));
      },
      routes,
    };
    app.decorate('accessControl', control);

    app.addHook('onRequest', async (request, reply) => {
      const access = accessOfRequest(request);
      if (access?.recorded === true) request.accessAt = options.clock();
      // No route (a 404), an open route, or a console page, which signs in by itself.
      if (access === undefined || access.scope === 'public' || access.console === true) return;
      let identity: TokenIdentity;
      try {
        identity = authenticate(request);
      } catch (error) {
        if (error instanceof HttpProblem && error.status === 403) {
          requests.inc({ token: 'unknown', outcome: 'unknown-token' });
        }
        throw error;
      }
      admit(request, reply, identity);
    });

    app.addHook('onSend', async (request, _reply, payload) =>
      request.apiToken !== null && accessOfRequest(request)?.recorded === true
        ? countBytes(request, payload)
        : payload,
    );

    // Once the answer is complete, or the client went away (a `/live` stream ends so): whichever
    // comes first.
    app.addHook('onResponse', async (request, reply) => recordAccess(request, reply));
  },
  { name: 'calltrail-authorization', dependencies: ['calltrail-console-session'] },
);
