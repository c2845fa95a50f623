/**
 * The Calls page (Flireo's /logs, and more): one row per call, filters that live in the URL (the
 * audit API's own parameter names, so a view can be shared and the same query works against
 * `GET /calls`), keyset paging, and the terminations CSV for the current filters. The page script
 * keeps rows current from `GET /live`, asking `/console/calls/:callId/row` for each changed call.
 */
import Type from 'typebox';
import type { Problem } from '../archive/archived-event.ts';
import {
  CallOutcome,
  CallStatusFilter,
  CallsPageKey,
  type CallFilter,
  type ShownCallRow,
} from '../audit/call-queries.ts';
import {
  IsoDateTime,
  Limit,
  TextFilter,
  decodeCursor,
  parseCursorTime,
  parseLimit,
  parseTimeRange,
} from '../audit/parameters.ts';
import { terminationOutcomes } from '../audit/terminations-csv.ts';
import { formatPosition } from '../event-store/event-store.ts';
import { option, queryString, textField } from './filter-form.ts';
import { readViewQuery, viewProblemsOf } from './view-query.ts';
import { attribute, html, type Html } from './html.ts';
import { duration, problemList, statusBadge, text, time } from './layout.ts';

/** The filters a Calls view is made of, as they appear in its URL. */
export const CallsViewQuery = Type.Object({
  from: Type.Optional(IsoDateTime('from')),
  to: Type.Optional(IsoDateTime('to')),
  status: Type.Optional(CallStatusFilter),
  outcome: Type.Optional(CallOutcome),
  caller: Type.Optional(TextFilter('caller')),
  assistant: Type.Optional(TextFilter('assistant')),
  debugInfo: Type.Optional(TextFilter('debugInfo')),
  limit: Type.Optional(Limit),
  cursor: Type.Optional(Type.String({ maxLength: 2048 })),
});
export type CallsViewQuery = Type.Static<typeof CallsViewQuery>;

const filterNames = ['from', 'to', 'status', 'outcome', 'caller', 'assistant', 'debugInfo'] as const;

export interface CallsView {
  /** The query as given (empty fields dropped), to refill the form. */
  readonly query: Readonly<Record<string, string>>;
  readonly filter: CallFilter;
  readonly limit: number;
  readonly after: { at: Date | null; callId: string } | undefined;
  readonly errors: readonly Problem[];
}

const defaultPageSize = 50;

/**
 * Reads a Calls view from a query string. Empty form fields count as absent; everything else is
 * checked as the audit API checks it, and each problem names its field.
 */
export const parseCallsView = (raw: Readonly<Record<string, unknown>>): CallsView => {
  const { query, checked, errors } = readViewQuery<CallsViewQuery>(raw, { schema: CallsViewQuery });
  const empty: CallsView = { query, filter: {}, limit: defaultPageSize, after: undefined, errors };
  if (checked === undefined) return empty;
  try {
    const range = parseTimeRange(checked);
    const key = decodeCursor(checked.cursor, CallsPageKey);
    return {
      query,
      filter: {
        ...range,
        status: checked.status,
        outcome: checked.outcome,
        caller: checked.caller,
        assistant: checked.assistant,
        debugInfo: checked.debugInfo,
      },
      limit: checked.limit === undefined ? defaultPageSize : parseLimit(checked.limit),
      after: key && { at: key[0] === null ? null : parseCursorTime(key[0]), callId: key[1] },
      errors: [],
    };
  } catch (error) {
    const problems = viewProblemsOf(error);
    if (problems === undefined) throw error;
    return { ...empty, errors: problems };
  }
};

/** Whether a call belongs in a view (what `listCalls` would select), for rows the live feed brings. */
export const matchesFilter = (row: ShownCallRow, filter: CallFilter): boolean => {
  const at = row.lastEventAt;
  if ((filter.from !== undefined || filter.to !== undefined) && at === null) return false;
  if (filter.from !== undefined && at!.getTime() < filter.from.getTime()) return false;
  if (filter.to !== undefined && at!.getTime() >= filter.to.getTime()) return false;
  if (filter.status !== undefined && row.status !== filter.status) return false;
  if (filter.outcome !== undefined && row.outcome !== filter.outcome) return false;
  if (filter.caller !== undefined && row.caller !== filter.caller) return false;
  if (filter.assistant !== undefined && row.assistant !== filter.assistant) return false;
  if (
    filter.debugInfo !== undefined &&
    !(row.debuggingArtifact ?? '').toLowerCase().includes(filter.debugInfo.toLowerCase())
  )
    return false;
  return true;
};

const filtersOf = (query: Readonly<Record<string, string>>): Record<string, string | undefined> =>
  Object.fromEntries(filterNames.map((name) => [name, query[name]]));

/**
 * The terminations export for the view: the same time range, assistant and outcome (a terminal
 * status filter is an outcome). Terminations are selected by end time rather than latest event.
 */
export const exportHref = (query: Readonly<Record<string, string>>): string => {
  const status = query['status'];
  const outcome =
    query['outcome'] ??
    (status !== undefined && (terminationOutcomes as readonly string[]).includes(status)
      ? status
      : undefined);
  return `/exports/terminations.csv${queryString({
    from: query['from'],
    to: query['to'],
    outcome,
    assistant: query['assistant'],
  })}`;
};

/** The Calls table's column headings, shared by every page that lists calls. */
export const callsTableHead: Html = html`<thead>
  <tr>
    <th scope="col">Time</th>
    <th scope="col">Call</th>
    <th scope="col">Caller</th>
    <th scope="col">Assistant</th>
    <th scope="col">Status</th>
    <th scope="col">Reason</th>
    <th scope="col">Debug Info</th>
    <th scope="col">Duration</th>
  </tr>
</thead>`;

export const callRow = (row: ShownCallRow): Html => {
  const position = formatPosition({ commit: row.lastCommitPosition, prepare: row.lastPreparePosition });
  return html`<tr data-call-id="${attribute(row.callId)}" data-position="${attribute(position)}">
    <td>${time(row.lastEventAt?.toISOString() ?? null)}</td>
    <td class="call-id">
      <a href="/console/calls/${attribute(encodeURIComponent(row.callId))}">${row.callId}</a>
    </td>
    <td>${text(row.caller)}</td>
    <td>${text(row.assistant)}</td>
    <td>${statusBadge(row.status)}</td>
    <td>${text(row.endedReason)}</td>
    <td class="debug">${text(row.debuggingArtifact)}</td>
    <td class="number">${duration(row.durationSeconds)}</td>
  </tr>`;
};

export const callsPage = (
  view: CallsView,
  rows: readonly ShownCallRow[],
  nextCursor: string | undefined,
  /** Whether the token may export: the Export CSV control is offered only then. */
  canExport = true,
): Html => {
  const { query } = view;
  const filters = filtersOf(query);
  const firstPage = view.after === undefined;
  const liveFilter = JSON.stringify(filters);
  return html`<h1>Calls</h1>
    <form class="filters" method="get" action="/console/calls" aria-label="Filter calls">
      ${textField('from', 'From (latest event, ISO 8601)', query, '2026-03-01T00:00:00Z')}
      ${textField('to', 'To (exclusive)', query, '2026-03-02T00:00:00Z')}
      <div class="field">
        <label for="filter-status">Status</label>
        <select id="filter-status" name="status">
          ${option('', 'any', query['status'])} ${option('in-progress', 'active', query['status'])}
          ${option('ended', 'ended', query['status'])}
          ${option('ended-with-debugging', 'ended with an error', query['status'])}
        </select>
      </div>
      <div class="field">
        <label for="filter-outcome">Outcome</label>
        <select id="filter-outcome" name="outcome">
          ${option('', 'any', query['outcome'])} ${option('ended', 'ended', query['outcome'])}
          ${option('ended-with-debugging', 'ended with an error', query['outcome'])}
        </select>
      </div>
      ${textField('assistant', 'Assistant', query, '+4930123456')}
      ${textField('caller', 'Caller', query, '+4915112345678')}
      ${textField('debugInfo', 'Debug Info contains', query)}
      ${query['limit'] === undefined ? '' : html`<input type="hidden" name="limit" value="${attribute(query['limit'])}" />`}
      <div class="actions">
        <button type="submit">Apply filters</button>
        <a href="/console/calls">Clear</a>
        ${
          canExport
            ? html`<a class="button" href="${attribute(exportHref(query))}" download>Export CSV</a>`
            : ''
        }
      </div>
    </form>
    ${view.errors.length > 0 ? problemList(view.errors) : ''}
    <p class="live-status" role="status" aria-live="polite" data-live-status></p>
    <div class="table-wrap">
      <table
        class="calls"
        data-live-calls="${attribute(firstPage ? 'prepend' : 'update')}"
        data-filter="${attribute(liveFilter)}"
      >
        <caption class="visually-hidden">
          Calls, most recent first
        </caption>
        ${callsTableHead}
        <tbody>
          ${rows.map(callRow)}
        </tbody>
      </table>
    </div>
    ${rows.length === 0 && view.errors.length === 0 ? html`<p class="empty">No calls match these filters.</p>` : ''}
    <nav class="paging" aria-label="Pages">
      ${firstPage ? '' : html`<a href="/console/calls${attribute(queryString({ ...filters, limit: query['limit'] }))}">First page</a>`}
      ${
        nextCursor === undefined
          ? ''
          : html`<a
              rel="next"
              href="/console/calls${attribute(queryString({ ...filters, limit: query['limit'], cursor: nextCursor }))}"
              >Next page</a
            >`
      }
    </nav>`;
};
