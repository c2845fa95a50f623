/**
 * The web console under `/console`: server-rendered pages over the audit API's own queries, a
 * stylesheet and one small ES module, all served from this process (no CDN, works offline).
 *
 * Every page is checked as the audit API checks a bearer token: the session cookie's token is
 * identified and admitted against the same route table (`src/access/`), so the console can show
 * nothing the token could not read, and offers no control its role lacks.
 * Pages send a Content-Security-Policy that allows scripts and styles from this origin only (no
 * inline script, no eval), and `no-store` (they show personal data).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import fastifyFormbody from '@fastify/formbody';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AppDependencies } from '../app.ts';
import { toArchivedEventView, toJsonLine, receivedAtOf } from '../audit/archived-event-view.ts';
import { readCall } from '../audit/archive-reader.ts';
import { callAsOf } from '../audit/call-as-of.ts';
import {
  findCall,
  findCallTimeline,
  listCalls,
  toCallView,
  toTimelineEntryView,
  type CallView,
  type TimelineEntryView,
} from '../audit/call-queries.ts';
import { encodeCursor, parseDateTime } from '../audit/parameters.ts';
import { fromReadModels } from '../audit/read-models.ts';
import { callIdPattern } from '../flireo/schemas.ts';
import { comparePositions, parsePosition } from '../event-store/event-store.ts';
import { HttpProblem } from '../http/problem.ts';
import { callPage } from './call-page.ts';
import { findRelayExchanges, toRelayExchangeView } from '../relay/exchange-queries.ts';
import { callRow, callsPage, matchesFilter, parseCallsView } from './calls-page.ts';
import { attribute, html } from './html.ts';
import { page, problemList } from './layout.ts';
import { livePage } from './live-page.ts';
import { projectionsPages } from './projections-routes.ts';
import { quarantinePages } from './quarantine-routes.ts';
import { accessLogPages } from './access-log-routes.ts';
import { healthPage, parseHealthView } from './health-page.ts';
import { readHealth } from '../health/health-routes.ts';
import {
  clearSessionCookie,
  csrfToken,
  isTokenShaped,
  requireSameOrigin,
  sessionToken,
  setSessionCookie,
} from './session.ts';

const contentSecurityPolicy = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The assets ship as they are, in the package's `src/console/assets`, whether calltrail runs its
 * sources or the compiled build (which runs from `dist/src/console` and copies no stylesheet).
 */
const assetsFolder = (() => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (let folder = here; ;) {
    const candidate = path.join(folder, 'src', 'console', 'assets');
    if (existsSync(path.join(candidate, 'console.css'))) return candidate;
    const parent = path.dirname(folder);
    if (parent === folder) return path.join(here, 'assets');
    folder = parent;
  }
})();

const assets = new Map<string, { type: string; body: Buffer }>(
  (
    [
      ['console.js', 'text/javascript; charset=utf-8'],
      ['console.css', 'text/css; charset=utf-8'],
    ] as const
  ).map(([name, type]) => [name, { type, body: readFileSync(path.join(assetsFolder, name)) }]),
);

const callIdRegExp = new RegExp(callIdPattern);

/** Archived events shown on one Call page; the JSON lines download has them all. */
const maxEventsShown = 500;

/** A path inside the console to go back to after signing in; anything else goes to Calls. */
const safeNext = (next: unknown): string =>
  typeof next === 'string' && /^\/console\/[A-Za-z0-9/._~%?&=+-]*$/.test(next) && !next.startsWith('//')
    ? next
    : '/console/calls';

const signInPage = (options: { next: string; error?: string }): string =>
  page({
    title: 'Sign in',
    body: html`<div class="sign-in">
      <h1>Sign in</h1>
      <p>Use an API token of this calltrail server. It is kept in a cookie of this browser session only.</p>
      ${options.error === undefined ? '' : problemList([{ field: 'token', message: options.error }])}
      <form method="post" action="/console/sign-in">
        <input type="hidden" name="next" value="${attribute(options.next)}" />
        <label for="token">API token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" required autofocus />
        <button type="submit">Sign in</button>
      </form>
    </div>`,
  });

/** A signed-in token whose role may not open the page: what it lacks, as the API's 403 says it. */
const forbiddenPage = (problem: HttpProblem, csrf: string, mayOpen: (href: string) => boolean): string =>
  page({
    title: 'Not allowed',
    csrf,
    mayOpen,
    body: html`<h1>Not allowed</h1>
      <p>${problem.detail ?? problem.title}.</p>
      <p><a href="/console/calls">← Calls</a></p>`,
  });

export const consoleRoutes: FastifyPluginAsyncTypebox<AppDependencies> = async (app, dependencies) => {
  const { config, eventStore } = dependencies;
  const { db } = dependencies.database;
  const { accessControl } = app;
  await app.register(fastifyFormbody, { bodyLimit: 8192 });

  app.addHook('onSend', async (_request, reply) => {
    reply.header('content-security-policy', contentSecurityPolicy);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'same-origin');
    reply.header('x-frame-options', 'DENY');
    if (reply.getHeader('cache-control') === undefined) reply.header('cache-control', 'no-store');
  });

  const sendPage = (reply: FastifyReply, body: string, status = 200) =>
    reply.code(status).type('text/html; charset=utf-8').send(body);

  const mayOpen =
    (request: FastifyRequest) =>
    (href: string): boolean =>
      request.apiToken !== null && accessControl.allows(request.apiToken, 'GET', href);

  /**
   * The signed-in token, or a redirect to the sign-in page (undefined then). A token whose role
   * lacks the page's scope gets the console's 403 page naming it (undefined then too).
   */
  const signedIn = async (request: FastifyRequest, reply: FastifyReply): Promise<string | undefined> => {
    const token = sessionToken(request);
    if (token !== undefined) {
      const identity = accessControl.identify(token);
      if (identity !== undefined) {
        try {
          accessControl.admit(request, reply, identity);
        } catch (error) {
          if (!(error instanceof HttpProblem) || error.status !== 403) throw error;
          sendPage(reply, forbiddenPage(error, csrfToken(token), mayOpen(request)), 403);
          return undefined;
        }
        return token;
      }
      clearSessionCookie(reply, config.publicUrl);
    }
    const next = encodeURIComponent(request.url);
    await reply.redirect(`/console/sign-in?next=${next}`, 303);
    return undefined;
  };

  app.get('/console', { schema: { hide: true } }, async (_request, reply) =>
    reply.redirect('/console/calls', 303),
  );

  app.get('/console/assets/:name', { schema: { hide: true } }, async (request, reply) => {
    const asset = assets.get((request.params as { name: string }).name);
    if (asset === undefined) throw new HttpProblem(404, 'Not Found', 'no such console asset');
    return reply.type(asset.type).header('cache-control', 'no-cache').send(asset.body);
  });

  app.get('/console/sign-in', { schema: { hide: true } }, async (request, reply) => {
    const next = safeNext((request.query as Record<string, unknown>)['next']);
    return sendPage(reply, signInPage({ next }));
  });

  app.post('/console/sign-in', { schema: { hide: true } }, async (request, reply) => {
    requireSameOrigin(request);
    const body = (request.body ?? {}) as Record<string, unknown>;
    const next = safeNext(body['next']);
    const token = typeof body['token'] === 'string' ? body['token'].trim() : '';
    if (!isTokenShaped(token)) {
      return sendPage(reply, signInPage({ next, error: 'is not an API token' }), 400);
    }
    if (accessControl.identify(token) === undefined) {
      request.log.info('console sign-in refused');
      return sendPage(reply, signInPage({ next, error: 'is not valid for this server' }), 403);
    }
    setSessionCookie(reply, token, config.publicUrl);
    return reply.redirect(next, 303);
  });

  app.post('/console/sign-out', { schema: { hide: true } }, async (request, reply) => {
    requireSameOrigin(request);
    const token = sessionToken(request);
    const body = (request.body ?? {}) as Record<string, unknown>;
    if (token !== undefined && body['csrf'] !== csrfToken(token)) {
      throw new HttpProblem(403, 'Forbidden', 'the sign-out form is not from this session', [
        { field: 'body/csrf', message: 'does not match the session' },
      ]);
    }
    clearSessionCookie(reply, config.publicUrl);
    return reply.redirect('/console/sign-in', 303);
  });

  app.get('/console/calls', { schema: { hide: true } }, async (request, reply) => {
    const token = await signedIn(request, reply);
    if (token === undefined) return reply;
    const view = parseCallsView(request.query as Record<string, unknown>);
    const csrf = csrfToken(token);
    if (view.errors.length > 0) {
      return sendPage(
        reply,
        page({
          title: 'Calls',
          section: 'calls',
          csrf,
          mayOpen: mayOpen(request),
          body: callsPage(view, [], undefined),
        }),
        400,
      );
    }
    const result = await fromReadModels(() =>
      listCalls(db, view.filter, { limit: view.limit, after: view.after }),
    );
    request.accessCount = result.calls.length;
    const next = result.next === undefined ? undefined : encodeCursor(result.next);
    return sendPage(
      reply,
      page({
        title: 'Calls',
        section: 'calls',
        csrf,
        mayOpen: mayOpen(request),
        body: callsPage(
          view,
          result.calls,
          next,
          request.apiToken !== null &&
            accessControl.allows(request.apiToken, 'GET', '/exports/terminations.csv'),
        ),
      }),
    );
  });

  /** One row for the live script: the call as the read model has it, once it has caught up. */
  app.get('/console/calls/:callId/row', { schema: { hide: true } }, async (request, reply) => {
    const token = await signedIn(request, reply);
    if (token === undefined) return reply;
    const { callId } = request.params as { callId: string };
    const query = { ...(request.query as Record<string, unknown>) };
    const positionText = query['position'];
    delete query['position'];
    const position = typeof positionText === 'string' ? parsePosition(positionText) : undefined;
    const view = parseCallsView(query);
    if (!callIdRegExp.test(callId) || position === undefined || view.errors.length > 0) {
      throw new HttpProblem(400, 'Bad Request', 'a call id, a position and valid filters are needed');
    }
    const row = await fromReadModels(() => findCall(db, callId));
    const seen =
      row !== undefined &&
      comparePositions({ commit: row.lastCommitPosition, prepare: row.lastPreparePosition }, position) >= 0;
    if (!seen) return { state: 'pending' };
    if (!matchesFilter(row, view.filter)) return { state: 'excluded' };
    return { state: 'row', html: callRow(row).text };
  });

  app.get('/console/calls/:callId', { schema: { hide: true } }, async (request, reply) => {
    const token = await signedIn(request, reply);
    if (token === undefined) return reply;
    const csrf = csrfToken(token);
    const { callId } = request.params as { callId: string };
    const asOfInput = (request.query as Record<string, unknown>)['asOf'];
    const notFound = (detail: string) =>
      sendPage(
        reply,
        page({
          title: 'Call not found',
          section: 'calls',
          csrf,
          mayOpen: mayOpen(request),
          body: html`<p><a href="/console/calls">← Calls</a></p>
            <h1>Call not found</h1>
            <p>${detail}</p>`,
        }),
        404,
      );
    if (!callIdRegExp.test(callId)) return notFound('This is not a call id calltrail accepts.');
    let asOf: Date | undefined;
    const errors: { field: string; message: string }[] = [];
    if (typeof asOfInput === 'string' && asOfInput !== '') {
      try {
        asOf = parseDateTime(asOfInput.trim(), 'asOf');
      } catch (error) {
        if (!(error instanceof HttpProblem) || error.errors === undefined) throw error;
        errors.push(...error.errors);
      }
    } else if (asOfInput !== undefined && typeof asOfInput !== 'string') {
      errors.push({ field: 'asOf', message: 'must be given once' });
    }
    let call: CallView;
    let timeline: TimelineEntryView[];
    if (asOf !== undefined) {
      const known = await callAsOf(eventStore, callId, asOf);
      if (!known) return notFound(`No event of this call had been received by ${asOf.toISOString()}.`);
      call = toCallView(known.call);
      timeline = known.timeline.map(toTimelineEntryView);
    } else {
      const [row, entries] = await fromReadModels(() =>
        Promise.all([findCall(db, callId), findCallTimeline(db, callId)]),
      );
      if (!row) return notFound('No call with this id is in the archive (yet).');
      call = toCallView(row);
      timeline = entries.map(toTimelineEntryView);
    }
    const relayExchanges = await fromReadModels(() => findRelayExchanges(db, callId, asOf));
    const events = [];
    let more = false;
    for await (const event of readCall(eventStore, callId)) {
      if (asOf !== undefined && receivedAtOf(event).getTime() > asOf.getTime()) continue;
      if (events.length >= maxEventsShown) {
        more = true;
        break;
      }
      events.push(toArchivedEventView(event));
    }
    return sendPage(
      reply,
      page({
        title: `Call ${callId}`,
        section: 'calls',
        csrf,
        mayOpen: mayOpen(request),
        body: callPage({
          call,
          timeline,
          events,
          asOf: asOf?.toISOString(),
          asOfInput: typeof asOfInput === 'string' ? asOfInput : undefined,
          moreEvents: more,
          errors,
          relayExchanges: relayExchanges.map(toRelayExchangeView),
        }),
      }),
      errors.length > 0 ? 400 : 200,
    );
  });

  app.get('/console/calls/:callId/events.jsonl', { schema: { hide: true } }, async (request, reply) => {
    const token = await signedIn(request, reply);
    if (token === undefined) return reply;
    const { callId } = request.params as { callId: string };
    if (!callIdRegExp.test(callId)) throw new HttpProblem(404, 'Not Found', 'not a call id');
    // Streamed: the first event decides between the file and a 404, the rest follow as read.
    const events = readCall(eventStore, callId)[Symbol.asyncIterator]();
    const first = await events.next();
    if (first.done === true) throw new HttpProblem(404, 'Not Found', 'no archived events for this call');
    const firstEvent = first.value;
    async function* lines(): AsyncGenerator<string> {
      yield toJsonLine(firstEvent);
      for (let next = await events.next(); next.done !== true; next = await events.next())
        yield toJsonLine(next.value);
    }
    return reply
      .type('application/jsonl; charset=utf-8')
      .header(
        'content-disposition',
        `attachment; filename="call-${callId.replace(/[^A-Za-z0-9._-]/g, '_')}.jsonl"`,
      )
      .send(Readable.from(lines()));
  });

  const pageTools = { sendPage, signedIn, mayOpen };
  quarantinePages(app, dependencies, pageTools);
  projectionsPages(app, dependencies, pageTools);
  accessLogPages(app, dependencies, pageTools);
  app.get('/console/health', { schema: { hide: true } }, async (request, reply) => {
    const token = await signedIn(request, reply);
    if (token === undefined) return reply;
    const now = dependencies.clock();
    const view = parseHealthView(request.query as Record<string, unknown>, now);
    const figures =
      view.period === undefined
        ? undefined
        : await readHealth(dependencies.database, config, { ...view.period, assistant: view.assistant, now });
    const body = healthPage(view, figures, now);
    return sendPage(
      reply,
      page({ title: 'Health', section: 'health', csrf: csrfToken(token), mayOpen: mayOpen(request), body }),
      view.errors.length > 0 ? 400 : 200,
    );
  });

  app.get('/console/live', { schema: { hide: true } }, async (request, reply) => {
    const token = await signedIn(request, reply);
    if (token === undefined) return reply;
    const [active, failed] = await fromReadModels(() =>
      Promise.all([
        listCalls(db, { status: 'in-progress' }, { limit: 100, after: undefined }),
        listCalls(db, { status: 'ended-with-debugging' }, { limit: 10, after: undefined }),
      ]),
    );
    return sendPage(
      reply,
      page({
        title: 'Live',
        section: 'live',
        csrf: csrfToken(token),
        mayOpen: mayOpen(request),
        body: livePage(active.calls, failed.calls),
      }),
    );
  });
};
