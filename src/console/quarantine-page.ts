/**
 * The Quarantine page: requests that were authenticated but not accepted as events, newest first,
 * with their problems, from the same query as `GET /quarantine` (and its parameter names in the
 * URL). Raw bodies are evidence of what a sender got wrong, often hostile or huge: they are shown
 * as escaped text, a bounded preview in the list and the whole body on the request's own page.
 */
import Type from 'typebox';
import { QuarantineReason, type Problem } from '../archive/archived-event.ts';
import type { ArchivedEventView } from '../audit/archived-event-view.ts';
import type { QuarantineFilter } from '../audit/quarantine-routes.ts';
import {
  IsoDateTime,
  Limit,
  PositionText,
  parseLimit,
  parsePositionParameter,
  parseTimeRange,
} from '../audit/parameters.ts';
import { parsePosition, type GlobalPosition } from '../event-store/event-store.ts';
import { option, queryString, textField } from './filter-form.ts';
import { readViewQuery, viewProblemsOf } from './view-query.ts';
import { attribute, html, type Html, type HtmlValue } from './html.ts';
import { problemList, text, time } from './layout.ts';

export const QuarantineViewQuery = Type.Object({
  reason: Type.Optional(QuarantineReason),
  from: Type.Optional(IsoDateTime('from')),
  to: Type.Optional(IsoDateTime('to')),
  limit: Type.Optional(Limit),
  cursor: Type.Optional(PositionText('cursor')),
});

const filterNames = ['reason', 'from', 'to'] as const;

export interface QuarantineView {
  readonly query: Readonly<Record<string, string>>;
  readonly filter: QuarantineFilter;
  readonly limit: number;
  readonly before: GlobalPosition | undefined;
  readonly errors: readonly Problem[];
}

const defaultPageSize = 25;

/** Characters of a raw body the list shows; the request's own page shows all of it. */
export const bodyPreviewCharacters = 600;

const reasonLabels: Record<QuarantineReason, string> = {
  'malformed-json': 'malformed JSON',
  'invalid-event': 'invalid event',
  'unsupported-media-type': 'unsupported media type',
  'body-too-large': 'body too large',
};

/** Reads a Quarantine view from a query string; empty fields count as absent, each problem named. */
export const parseQuarantineView = (raw: Readonly<Record<string, unknown>>): QuarantineView => {
  const { query, checked, errors } = readViewQuery<Type.Static<typeof QuarantineViewQuery>>(raw, {
    schema: QuarantineViewQuery,
  });
  const empty: QuarantineView = { query, filter: {}, limit: defaultPageSize, before: undefined, errors };
  if (checked === undefined) return empty;
  try {
    return {
      query,
      filter: { reason: checked.reason, ...parseTimeRange(checked) },
      limit: checked.limit === undefined ? defaultPageSize : parseLimit(checked.limit),
      before: parsePositionParameter(checked.cursor, 'querystring/cursor'),
      errors: [],
    };
  } catch (error) {
    const problems = viewProblemsOf(error);
    if (problems === undefined) throw error;
    return { ...empty, errors: problems };
  }
};

/** The path of one request's page; a position is two numbers, so it is two path segments. */
export const requestHref = (position: string): string => {
  const parsed = parsePosition(position);
  return parsed === undefined
    ? '/console/quarantine'
    : `/console/quarantine/${parsed.commit.toString()}/${parsed.prepare.toString()}`;
};

const field = (view: ArchivedEventView, name: string): unknown => view.data[name];

/** A value of the stored data as text, whatever its shape (records are shown as far as they read). */
const shownText = (value: unknown, absent: string): string =>
  value === undefined || value === null ? absent : typeof value === 'string' ? value : JSON.stringify(value);

const problemsOf = (view: ArchivedEventView): { field: string; message: string }[] => {
  const problems = field(view, 'problems');
  if (!Array.isArray(problems)) return [];
  return problems.map((problem: unknown) => {
    const entry = (typeof problem === 'object' && problem !== null ? problem : {}) as Record<string, unknown>;
    return { field: shownText(entry['field'], ''), message: shownText(entry['message'], '') };
  });
};

const reasonBadge = (view: ArchivedEventView): Html => {
  const reason = field(view, 'reason');
  const label =
    typeof reason === 'string' && reason in reasonLabels
      ? reasonLabels[reason as QuarantineReason]
      : shownText(reason, 'unknown');
  return html`<span class="status status-quarantined">${label}</span>`;
};

const problemsList = (view: ArchivedEventView): Html => {
  const problems = problemsOf(view);
  return problems.length === 0
    ? html`<span class="none">—</span>`
    : html`<ul class="request-problems">
        ${problems.map(
          (problem) => html`<li><strong class="mono">${problem.field}</strong> ${problem.message}</li>`,
        )}
      </ul>`;
};

const contentTypeOf = (view: ArchivedEventView): string | null => {
  const contentType = field(view, 'contentType');
  return typeof contentType === 'string' ? contentType : null;
};

const receptionText = (view: ArchivedEventView, name: string): HtmlValue => {
  const value = view.reception[name];
  if (value === undefined || value === null) return text(null);
  return typeof value === 'string' ? value : JSON.stringify(value);
};

/** How the body is written on the page, and what the reader should know about it. */
const bodyNote = (view: ArchivedEventView): HtmlValue => {
  if (view.rawBody === null) return 'No body was received.';
  const notes: HtmlValue[] = [];
  if (view.rawBodyEncoding === 'base64') notes.push('The bytes are not UTF-8 text: shown in base64. ');
  if (field(view, 'bodyTruncated') === true) {
    const received = field(view, 'receivedBytes');
    const declared = field(view, 'declaredBytes');
    notes.push(
      html`Only the first bytes are kept:
        ${typeof received === 'number' ? received.toLocaleString('en') : '?'} bytes were
        read${typeof declared === 'number' ? html`, ${declared.toLocaleString('en')} declared` : ''}; SHA-256
        of what was read: <span class="mono">${shownText(field(view, 'receivedSha256'), '—')}</span>.`,
    );
  }
  return notes;
};

const previewOf = (body: string): { shown: string; more: number } => {
  if (body.length <= bodyPreviewCharacters) return { shown: body, more: 0 };
  // Never cut a surrogate pair in two.
  const last = body.charCodeAt(bodyPreviewCharacters - 1);
  const end = last >= 0xd800 && last <= 0xdbff ? bodyPreviewCharacters - 1 : bodyPreviewCharacters;
  return { shown: body.slice(0, end), more: body.length - end };
};

const requestRow = (view: ArchivedEventView): Html => {
  const preview = view.rawBody === null ? undefined : previewOf(view.rawBody);
  const href = requestHref(view.position);
  return html`<tr data-position="${attribute(view.position)}">
    <td>${time(view.storedAt)}</td>
    <td>${reasonBadge(view)}</td>
    <td class="problems-cell">${problemsList(view)}</td>
    <td class="mono">${text(contentTypeOf(view))}</td>
    <td>${receptionText(view, 'sourceAddress')}</td>
    <td class="body-cell">
      ${
        preview === undefined
          ? html`<span class="none">no body</span>`
          : html`<pre class="body preview">${preview.shown}</pre>
              ${
                preview.more > 0
                  ? html`<a href="${attribute(href)}"
                      >Show all (${preview.more.toLocaleString('en')} more characters)</a
                    >`
                  : html`<a href="${attribute(href)}">Details</a>`
              }`
      }
    </td>
  </tr>`;
};

export const quarantinePage = (
  view: QuarantineView,
  requests: readonly ArchivedEventView[],
  nextCursor: string | undefined,
): Html => {
  const { query } = view;
  const filters = Object.fromEntries(filterNames.map((name) => [name, query[name]]));
  return html`<h1>Quarantine</h1>
    <p class="muted">
      Requests that were authenticated but could not be archived as events, newest first, kept as evidence
      exactly as received.
    </p>
    <form class="filters" method="get" action="/console/quarantine" aria-label="Filter quarantined requests">
      <div class="field">
        <label for="filter-reason">Reason</label>
        <select id="filter-reason" name="reason">
          ${option('', 'any', query['reason'])}
          ${Object.entries(reasonLabels).map(([value, label]) => option(value, label, query['reason']))}
        </select>
      </div>
      ${textField('from', 'From (stored, ISO 8601)', query, '2026-03-01T00:00:00Z')}
      ${textField('to', 'To (exclusive)', query, '2026-03-02T00:00:00Z')}
      ${query['limit'] === undefined ? '' : html`<input type="hidden" name="limit" value="${attribute(query['limit'])}" />`}
      <div class="actions">
        <button type="submit">Apply filters</button>
        <a href="/console/quarantine">Clear</a>
      </div>
    </form>
    ${view.errors.length > 0 ? problemList(view.errors) : ''}
    <div class="table-wrap">
      <table class="quarantine">
        <caption class="visually-hidden">
          Quarantined requests, newest first
        </caption>
        <thead>
          <tr>
            <th scope="col">Stored</th>
            <th scope="col">Reason</th>
            <th scope="col">Problems</th>
            <th scope="col">Content type</th>
            <th scope="col">Source</th>
            <th scope="col">Raw body</th>
          </tr>
        </thead>
        <tbody>
          ${requests.map(requestRow)}
        </tbody>
      </table>
    </div>
    ${
      requests.length === 0 && view.errors.length === 0
        ? html`<p class="empty">No quarantined request matches these filters.</p>`
        : ''
    }
    <nav class="paging" aria-label="Pages">
      ${
        view.before === undefined
          ? ''
          : html`<a href="/console/quarantine${attribute(queryString({ ...filters, limit: query['limit'] }))}"
              >First page</a
            >`
      }
      ${
        nextCursor === undefined
          ? ''
          : html`<a
              rel="next"
              href="/console/quarantine${attribute(queryString({ ...filters, limit: query['limit'], cursor: nextCursor }))}"
              >Older requests</a
            >`
      }
    </nav>`;
};

const fact = (label: string, value: HtmlValue): Html =>
  html`<dt>${label}</dt>
    <dd>${value}</dd>`;

/** One quarantined request: everything kept of it, the whole raw body included. */
export const quarantinedRequestPage = (view: ArchivedEventView): Html =>
  html`<p><a href="/console/quarantine">← Quarantine</a></p>
    <h1>Quarantined request ${reasonBadge(view)}</h1>
    <h2>Problems</h2>
    ${problemsList(view)}
    <h2>Reception</h2>
    <dl class="facts">
      ${fact('Received at', time(view.receivedAt))} ${fact('Stored at', time(view.storedAt))}
      ${fact('Content type', html`<span class="mono">${text(contentTypeOf(view))}</span>`)}
      ${fact('Signature verified', view.signatureVerified === null ? text(null) : view.signatureVerified ? 'yes' : 'no')}
      ${fact('Authentication', receptionText(view, 'authentication'))}
      ${fact('Source address', receptionText(view, 'sourceAddress'))}
      ${fact('User agent', receptionText(view, 'userAgent'))}
      ${fact('Request id', receptionText(view, 'requestId'))}
      ${fact('Stream / revision', html`<span class="mono">${view.stream} / ${view.revision}</span>`)}
      ${fact('Position', html`<span class="mono">${view.position}</span>`)}
      ${fact('Event id', html`<span class="mono">${view.eventId}</span>`)}
    </dl>
    <h2>Raw body</h2>
    <p class="muted">
      ${bodyNote(view)}
      ${view.rawBody === null ? '' : `${view.rawBody.length.toLocaleString('en')} characters, shown as text.`}
    </p>
    ${view.rawBody === null ? '' : html`<pre class="body whole">${view.rawBody}</pre>`}`;
