/**
 * The one table of what every route needs: its scope (or `public`), whether it is a console page
 * (which signs in instead of answering 401), and whether a request to it is written to the access
 * log. A route missing here cannot be registered (`authorization.ts` refuses it at start-up), so a
 * new route never ships without a decision about who may call it.
 *
 * Keys are the method and Fastify's route pattern; HEAD follows its GET.
 */
import type { Scope } from './scopes.ts';

export interface RouteAccess {
  readonly scope: Scope | 'public';
  /** A console page: a request without a session goes to the sign-in page, not a 401. */
  readonly console?: boolean;
  /** Written to the access log (reads of archive data, exports, replays, controls). */
  readonly recorded?: boolean;
}

const open: RouteAccess = { scope: 'public' };
const read: RouteAccess = { scope: 'archive:read', recorded: true };
const control: RouteAccess = { scope: 'deliveries:control', recorded: true };
const page: RouteAccess = { scope: 'archive:read', console: true, recorded: true };

export const routeAccess: Readonly<Record<string, RouteAccess>> = {
  // Flireo's webhooks authenticate with their own secret or token.
  'POST /webhooks/flireo': open,
  'POST /webhooks/flireo/:token': open,
  // Load balancers and the API's own documentation.
  'GET /healthz': open,
  'GET /readyz': open,
  'GET /metrics': { scope: 'metrics:read' },

  'GET /calls': read,
  'GET /calls/:callId': read,
  'GET /calls/:callId/events': read,
  'GET /calls/:callId/proof': read,
  'GET /quarantine': read,
  'GET /assistant-requests/relay-exchanges': read,
  'GET /health': read,
  'GET /live': read,
  'GET /exports/terminations.csv': { scope: 'archive:export', recorded: true },
  'GET /replay': { scope: 'archive:replay', recorded: true },
  'GET /access-log': { scope: 'access-log:read', recorded: true },

  'GET /deliveries': read,
  'GET /deliveries/:id': read,
  'GET /destinations': read,
  'POST /deliveries/:id/retry': control,
  'POST /destinations/:name/retry-failed': control,
  'POST /destinations/:name/pause': control,
  'POST /destinations/:name/resume': control,

  'GET /console': open,
  'GET /console/assets/:name': open,
  'GET /console/sign-in': open,
  // Checks the token it is given (sign-in), or needs the session's CSRF token (sign-out).
  'POST /console/sign-in': open,
  'POST /console/sign-out': open,
  'GET /console/calls': page,
  'GET /console/calls/:callId': page,
  'GET /console/calls/:callId/events.jsonl': page,
  // Asked once per live event by an open Calls page: the row it already shows, so not recorded.
  'GET /console/calls/:callId/row': { scope: 'archive:read', console: true },
  'GET /console/quarantine': page,
  'GET /console/quarantine/:commit/:prepare': page,
  'GET /console/projections': page,
  'GET /console/health': page,
  'GET /console/live': page,
  'GET /console/access-log': { scope: 'access-log:read', console: true, recorded: true },
};

/** The OpenAPI document and its UI describe the API and give no access. */
const publicPrefixes = ['/docs'];

export const routeKey = (method: string, url: string): string =>
  `${method === 'HEAD' ? 'GET' : method} ${url}`;

/** What a route needs; undefined for a route the table does not know. */
export const accessOf = (method: string, url: string): RouteAccess | undefined =>
  routeAccess[routeKey(method, url)] ??
  (publicPrefixes.some((prefix) => url === prefix || url.startsWith(`${prefix}/`)) ? open : undefined);
