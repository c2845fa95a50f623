/**
 * The console's Access log page (`/console/access-log`, the same reader and parameters as
 * `GET /access-log`). The route table gives it the access-log scope: other roles get the 403 and do
 * not see its link.
 */
import type { AppDependencies } from '../app.ts';
import { readAccessLog } from '../access/access-log-routes.ts';
import { accessLogPage, parseAccessLogView } from './access-log-page.ts';
import { csrfToken } from './session.ts';
import { page } from './layout.ts';
import type { ConsolePageTools, RouteHost } from './quarantine-routes.ts';
import { viewProblemsOf } from './view-query.ts';

export const accessLogPages = (
  app: RouteHost,
  dependencies: AppDependencies,
  { sendPage, signedIn, mayOpen }: ConsolePageTools,
): void => {
  app.get('/console/access-log', { schema: { hide: true } }, async (request, reply) => {
    const token = await signedIn(request, reply);
    if (token === undefined) return reply;
    const show = (body: Parameters<typeof page>[0]['body'], status = 200) =>
      sendPage(
        reply,
        page({
          title: 'Access log',
          section: 'access-log',
          csrf: csrfToken(token),
          mayOpen: mayOpen(request),
          body,
        }),
        status,
      );
    const view = parseAccessLogView(request.query as Record<string, unknown>);
    if (view.checked === undefined) return show(accessLogPage(view, [], undefined), 400);
    let result;
    try {
      result = await readAccessLog(dependencies.eventStore, dependencies.clock(), view.checked);
    } catch (error) {
      const problems = viewProblemsOf(error);
      if (problems === undefined) throw error;
      return show(accessLogPage({ ...view, errors: problems }, [], undefined), 400);
    }
    request.accessCount = result.entries.length;
    return show(accessLogPage(view, result.entries, result.nextCursor ?? undefined));
  });
};
