/**
 * The Projections page: for each read model, how far its projection has got (checkpoint, lag as
 * `/readyz` reports it, whether a projector holds its leader lock), and the dead letters (events a
 * projection could not fold and skipped), newest first, filterable by projection in the URL.
 */
import type { Problem } from '../archive/archived-event.ts';
import { callStreamPrefix } from '../archive/streams.ts';
import { attribute, html, type Html } from './html.ts';
import { problemList, text, time } from './layout.ts';
import { queryString } from './filter-form.ts';

export interface ProjectionOverview {
  readonly projection: string;
  readonly tables: readonly string[];
  readonly streamPrefix: string;
  /** The checkpoint's position, or null before the projection applied anything. */
  readonly checkpoint: string | null;
  readonly checkpointUpdatedAt: string | null;
  /** Whether some projector process holds this projection's leader lock (is running it). */
  readonly active: boolean;
  /** Undefined when the event store could not be read to measure it. */
  readonly lag:
    { readonly caughtUp: boolean; readonly lagEvents: number; readonly lagSeconds: number } | undefined;
  readonly deadLetters: number;
}

export interface DeadLetterView {
  readonly id: string;
  readonly projection: string;
  readonly eventId: string;
  readonly streamName: string;
  readonly streamRevision: string;
  readonly position: string;
  readonly eventType: string;
  readonly error: string;
  readonly recordedAt: string;
}

export interface ProjectionsPageModel {
  readonly projections: readonly ProjectionOverview[];
  readonly deadLetters: readonly DeadLetterView[];
  /** The filters as given, to refill the form and build paging links. */
  readonly query: Readonly<Record<string, string>>;
  readonly nextCursor: string | undefined;
  readonly firstPage: boolean;
  readonly errors: readonly Problem[];
  /** When the figures were taken (ISO). */
  readonly measuredAt: string;
}

const seconds = (value: number): string =>
  value < 60
    ? `${value.toFixed(1)} s`
    : value < 3600
      ? `${(value / 60).toFixed(1)} min`
      : `${(value / 3600).toFixed(1)} h`;

const lagCell = (overview: ProjectionOverview): Html => {
  const { lag } = overview;
  if (lag === undefined) return html`<span class="none">unknown: the event store could not be read</span>`;
  if (lag.caughtUp) return html`<span class="status status-ended">caught up</span>`;
  return html`<span class="status status-in-progress">behind</span> ${lag.lagEvents.toLocaleString('en')}
    events, oldest waiting ${seconds(lag.lagSeconds)}`;
};

const projectionRow = (overview: ProjectionOverview): Html =>
  html`<tr data-projection="${attribute(overview.projection)}">
    <th scope="row">${overview.projection}</th>
    <td class="mono">${overview.tables.join(', ')}</td>
    <td>
      ${
        overview.active
          ? html`<span class="status status-ended">running</span>`
          : html`<span class="status status-ended-with-debugging">no projector running</span>`
      }
    </td>
    <td>${lagCell(overview)}</td>
    <td class="mono">${text(overview.checkpoint)}</td>
    <td>${time(overview.checkpointUpdatedAt)}</td>
    <td class="number">
      ${
        overview.deadLetters === 0
          ? '0'
          : html`<a
              href="/console/projections?projection=${attribute(encodeURIComponent(overview.projection))}#dead-letters"
              >${overview.deadLetters.toLocaleString('en')}</a
            >`
      }
    </td>
  </tr>`;

const streamCell = (letter: DeadLetterView): Html =>
  letter.streamName.startsWith(callStreamPrefix)
    ? html`<a
          href="/console/calls/${attribute(encodeURIComponent(letter.streamName.slice(callStreamPrefix.length)))}"
          >${letter.streamName}</a
        >
        / ${letter.streamRevision}`
    : html`${letter.streamName} / ${letter.streamRevision}`;

const deadLetterRow = (letter: DeadLetterView): Html =>
  html`<tr data-dead-letter="${attribute(letter.id)}">
    <td>${time(letter.recordedAt)}</td>
    <td>${letter.projection}</td>
    <td>${letter.eventType}</td>
    <td class="call-id">${streamCell(letter)}</td>
    <td class="mono">${letter.position}</td>
    <td class="mono">${letter.eventId}</td>
    <td class="debug">${letter.error}</td>
  </tr>`;

export const projectionsPage = (model: ProjectionsPageModel, projectionNames: readonly string[]): Html => {
  const selected = model.query['projection'];
  const filters = { projection: selected, limit: model.query['limit'] };
  return html`<h1>Projections</h1>
    <p class="muted">
      Each read model is kept by a projection that follows the event store. Measured at
      ${time(model.measuredAt)}; reload for fresh figures.
    </p>
    <div class="table-wrap">
      <table class="projections">
        <caption class="visually-hidden">
          Projections, their progress and dead letters
        </caption>
        <thead>
          <tr>
            <th scope="col">Projection</th>
            <th scope="col">Tables</th>
            <th scope="col">Projector</th>
            <th scope="col">Lag</th>
            <th scope="col">Checkpoint</th>
            <th scope="col">Checkpoint moved</th>
            <th scope="col">Dead letters</th>
          </tr>
        </thead>
        <tbody>
          ${model.projections.map(projectionRow)}
        </tbody>
      </table>
    </div>
    <h2 id="dead-letters">Dead letters</h2>
    <p class="muted">
      Events a projection could not fold: skipped, so the rest kept flowing. The events themselves stay in the
      archive; a rebuild after a fix folds them again.
    </p>
    <form class="filters" method="get" action="/console/projections" aria-label="Filter dead letters">
      <div class="field">
        <label for="filter-projection">Projection</label>
        <select id="filter-projection" name="projection">
          <option value="" ${selected === undefined ? html` selected` : ''}>any</option>
          ${projectionNames.map(
            (name) =>
              html`<option value="${attribute(name)}" ${name === selected ? html` selected` : ''}>
                ${name}
              </option>`,
          )}
        </select>
      </div>
      <div class="actions">
        <button type="submit">Apply filter</button>
        <a href="/console/projections">Clear</a>
      </div>
    </form>
    ${model.errors.length > 0 ? problemList(model.errors) : ''}
    <div class="table-wrap">
      <table class="dead-letters">
        <caption class="visually-hidden">
          Dead letters, newest first
        </caption>
        <thead>
          <tr>
            <th scope="col">Recorded</th>
            <th scope="col">Projection</th>
            <th scope="col">Event</th>
            <th scope="col">Stream / revision</th>
            <th scope="col">Position</th>
            <th scope="col">Event id</th>
            <th scope="col">Error</th>
          </tr>
        </thead>
        <tbody>
          ${model.deadLetters.map(deadLetterRow)}
        </tbody>
      </table>
    </div>
    ${
      model.deadLetters.length === 0 && model.errors.length === 0
        ? html`<p class="empty">No dead letters${selected === undefined ? '' : ' for this projection'}.</p>`
        : ''
    }
    <nav class="paging" aria-label="Pages">
      ${model.firstPage ? '' : html`<a href="/console/projections${attribute(queryString(filters))}#dead-letters">First page</a>`}
      ${
        model.nextCursor === undefined
          ? ''
          : html`<a
              rel="next"
              href="/console/projections${attribute(queryString({ ...filters, cursor: model.nextCursor }))}#dead-letters"
              >Older dead letters</a
            >`
      }
    </nav>`;
};
