/**
 * The console's Quarantine pages: the list (`/console/quarantine`, the same query and parameters as
 * `GET /quarantine`) and one request with its whole raw body (`/console/quarantine/:commit/:prepare`).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AppDependencies } from '../app.ts';
import { findQuarantinedRequest, listQuarantinedRequests } from '../audit/quarantine-routes.ts';
import { fromReadModels } from '../audit/read-models.ts';
import { formatPosition, parsePosition } from '../event-store/event-store.ts';
import { quarantinedRequestView } from '../../projections/quarantine/read-model.ts';
import { csrfToken } from './session.ts';
import { html } from './html.ts';
import { page } from './layout.ts';
import { parseQuarantineView, quarantinePage, quarantinedRequestPage } from './quarantine-page.ts';

/** What every console page route needs from the console's plugin. */
export interface ConsolePageTools {
  readonly sendPage: (reply: FastifyReply, body: string, status?: number) => FastifyReply;
  /** The signed-in token, or undefined after redirecting to sign-in. */
  readonly signedIn: (request: FastifyRequest, reply: FastifyReply) => Promise<string | undefined>;
  /** Whether the signed-in token may open a console page (for the navigation's restricted links). */
  readonly mayOpen: (request: FastifyRequest) => (href: string) => boolean;
}

export interface RouteHost {
  get(
    path: string,
    options: { schema: { hide: true } },
    handler: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>,
  ): unknown;
}

export const quarantinePages = (
  app: RouteHost,
  dependencies: AppDependencies,
  { sendPage, signedIn, mayOpen }: ConsolePageTools,
): void => {
  const { db } = dependencies.database;

  app.get('/console/quarantine', { schema: { hide: true } }, async (request, reply) => {
    const token = await signedIn(request, reply);
    if (token === undefined) return reply;
    const csrf = csrfToken(token);
    const view = parseQuarantineView(request.query as Record<string, unknown>);
    const show = (body: Parameters<typeof page>[0]['body'], status = 200) =>
      sendPage(
        reply,
        page({ title: 'Quarantine', section: 'quarantine', csrf, mayOpen: mayOpen(request), body }),
        status,
      );
    if (view.errors.length > 0) return show(quarantinePage(view, [], undefined), 400);
    // One extra row tells whether an older page exists.
    const rows = await fromReadModels(() =>
      listQuarantinedRequests(db, view.filter, view.before, view.limit + 1),
    );
    const shown = rows.slice(0, view.limit);
    const last = shown.at(-1);
    const next =
      rows.length > view.limit && last
        ? formatPosition({ commit: last.commitPosition, prepare: last.preparePosition })
        : undefined;
    return show(quarantinePage(view, shown.map(quarantinedRequestView), next));
  });

  app.get('/console/quarantine/:commit/:prepare', { schema: { hide: true } }, async (request, reply) => {
    const token = await signedIn(request, reply);
    if (token === undefined) return reply;
    const csrf = csrfToken(token);
    const { commit, prepare } = request.params as { commit: string; prepare: string };
    const position = parsePosition(`${commit}/${prepare}`);
    const row = position && (await fromReadModels(() => findQuarantinedRequest(db, position)));
    if (!row) {
      return sendPage(
        reply,
        page({
          title: 'Quarantined request not found',
          section: 'quarantine',
          csrf,
          mayOpen: mayOpen(request),
          body: html`<p><a href="/console/quarantine">← Quarantine</a></p>
            <h1>Quarantined request not found</h1>
            <p>No quarantined request is stored at this position.</p>`,
        }),
        404,
      );
    }
    return sendPage(
      reply,
      page({
        title: 'Quarantined request',
        section: 'quarantine',
        csrf,
        mayOpen: mayOpen(request),
        body: quarantinedRequestPage(quarantinedRequestView(row)),
      }),
    );
  });
};
