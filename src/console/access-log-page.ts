/**
 * The Access log page: who read what, from the same reader and with the same parameters as
 * `GET /access-log` (so a view's URL works against the API too), oldest first within the period,
 * keyset-paged. Only for roles with the access-log scope. Everything an entry holds came from a
 * request (its path and query above all), so all of it is shown as text.
 */
import type { Problem } from '../archive/archived-event.ts';
import type { AccessLogEntry, AccessLogQuery } from '../access/access-log-routes.ts';
import { AccessLogQuery as AccessLogQuerySchema } from '../access/access-log-routes.ts';
import { queryString, textField } from './filter-form.ts';
import { readViewQuery } from './view-query.ts';
import { attribute, html, type Html, type HtmlValue } from './html.ts';
import { problemList, text, time } from './layout.ts';

const filterNames = ['from', 'to', 'token', 'route'] as const;

export interface AccessLogView {
  /** The query as given (empty fields dropped), to refill the form. */
  readonly query: Readonly<Record<string, string>>;
  /** The checked query, when it has no problems. */
  readonly checked: AccessLogQuery | undefined;
  readonly errors: readonly Problem[];
}

/** Reads an Access log view from a query string; empty fields count as absent, each problem named. */
export const parseAccessLogView = (raw: Readonly<Record<string, unknown>>): AccessLogView =>
  readViewQuery<AccessLogQuery>(raw, { schema: AccessLogQuerySchema });

const queryText = (query: AccessLogEntry['query']): HtmlValue => {
  const entries = Object.entries(query);
  if (entries.length === 0) return text(null);
  return entries.map(
    ([name, value]) =>
      html`<span class="query-part"
        ><strong>${name}</strong>=${Array.isArray(value) ? value.join(', ') : value}</span
      > `,
  );
};

const entryRow = (entry: AccessLogEntry): Html =>
  html`<tr data-request-id="${attribute(entry.requestId)}">
    <td>${time(entry.at)}</td>
    <td><span class="mono">${entry.token}</span> <span class="muted">${entry.role}</span></td>
    <td class="request">
      <span class="mono">${entry.method} ${entry.path}</span>
      ${entry.path === entry.route ? '' : html`<br /><span class="muted mono">${entry.route}</span>`}
    </td>
    <td class="debug">${queryText(entry.query)}</td>
    <td class="number">${entry.status}</td>
    <td class="number">${entry.resultCount === undefined ? text(null) : entry.resultCount}</td>
    <td class="number">${entry.bytes === undefined ? text(null) : entry.bytes.toLocaleString('en')}</td>
    <td>${entry.sourceAddress}</td>
  </tr>`;

export const accessLogPage = (
  view: AccessLogView,
  entries: readonly AccessLogEntry[],
  nextCursor: string | undefined,
): Html => {
  const { query } = view;
  const filters = Object.fromEntries(filterNames.map((name) => [name, query[name]]));
  return html`<h1>Access log</h1>
    <p class="muted">
      Who read what: every request for archive data, export, replay and delivery control made with a known
      token, oldest first. Without a period, the last 24 hours.
    </p>
    <form class="filters" method="get" action="/console/access-log" aria-label="Filter the access log">
      ${textField('from', 'From (ISO 8601)', query, '2026-03-01T00:00:00Z')}
      ${textField('to', 'To (exclusive)', query, '2026-03-02T00:00:00Z')}
      ${textField('token', 'Token name', query, 'auditor-1')}
      ${textField('route', 'Route', query, '/calls/:callId')}
      ${query['limit'] === undefined ? '' : html`<input type="hidden" name="limit" value="${attribute(query['limit'])}" />`}
      <div class="actions">
        <button type="submit">Apply filters</button>
        <a href="/console/access-log">Clear</a>
      </div>
    </form>
    ${view.errors.length > 0 ? problemList(view.errors) : ''}
    <div class="table-wrap">
      <table class="access-log">
        <caption class="visually-hidden">
          Access log entries, oldest first
        </caption>
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Token</th>
            <th scope="col">Request</th>
            <th scope="col">Query</th>
            <th scope="col">Status</th>
            <th scope="col">Results</th>
            <th scope="col">Bytes</th>
            <th scope="col">Source</th>
          </tr>
        </thead>
        <tbody>
          ${entries.map(entryRow)}
        </tbody>
      </table>
    </div>
    ${
      entries.length === 0 && view.errors.length === 0
        ? html`<p class="empty">
            No access matches these filters${nextCursor === undefined ? '' : ' on this page'}.
          </p>`
        : ''
    }
    <nav class="paging" aria-label="Pages">
      ${
        query['cursor'] === undefined
          ? ''
          : html`<a href="/console/access-log${attribute(queryString({ ...filters, limit: query['limit'] }))}"
              >First page</a
            >`
      }
      ${
        nextCursor === undefined
          ? ''
          : html`<a
              rel="next"
              href="/console/access-log${attribute(queryString({ ...filters, limit: query['limit'], cursor: nextCursor }))}"
              >Later entries</a
            >`
      }
    </nav>`;
};
