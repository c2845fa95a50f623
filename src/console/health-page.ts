/**
 * The Health page: the integration-health figures of `GET /health` (same queries) for a chosen
 * period, as charts drawn on the server as inline SVG (no script, no chart library, nothing the
 * Content-Security-Policy would have to allow: shapes carry classes, never inline styles). Every
 * chart has a title and description for screen readers and its numbers in a table beside it;
 * artifact text only ever appears as escaped text.
 */
import type { Problem } from '../archive/archived-event.ts';
import type { HealthFigures } from '../health/health-queries.ts';
import { HealthQuery, parseHealthPeriod } from '../health/health-routes.ts';
import { readViewQuery, viewProblemsOf } from './view-query.ts';
import { attribute, html, type Html } from './html.ts';
import { problemList, text, time } from './layout.ts';

export interface HealthView {
  /** The query as given (empty fields dropped), to refill the form. */
  readonly query: Readonly<Record<string, string>>;
  readonly period: { from: Date; to: Date } | undefined;
  readonly assistant: string | undefined;
  readonly errors: readonly Problem[];
}

/** Reads the page's query: empty fields are absent; each problem names its field. */
export const parseHealthView = (raw: Readonly<Record<string, unknown>>, now: Date): HealthView => {
  const { query, checked, errors } = readViewQuery<HealthQuery>(raw, { schema: HealthQuery });
  const failed = (problems: readonly Problem[]): HealthView => ({
    query,
    period: undefined,
    assistant: undefined,
    errors: problems,
  });
  if (checked === undefined) return failed(errors);
  try {
    return { query, period: parseHealthPeriod(checked, now), assistant: checked.assistant, errors: [] };
  } catch (error) {
    const problems = viewProblemsOf(error);
    if (problems === undefined) throw error;
    return failed(problems);
  }
};

const iso = (at: Date) => at.toISOString();
const sum = (values: readonly number[]) => values.reduce((total, value) => total + value, 0);

const formatSeconds = (seconds: number): string =>
  seconds >= 90 ? `${(seconds / 60).toFixed(1)} min` : `${seconds.toFixed(1)} s`;

const bucketLabel = (seconds: number): string =>
  seconds % 86_400 === 0
    ? `${seconds / 86_400} day${seconds === 86_400 ? '' : 's'}`
    : seconds % 3_600 === 0
      ? `${seconds / 3_600} hour${seconds === 3_600 ? '' : 's'}`
      : `${seconds / 60} minutes`;

/** Call volume: ended calls as bars (failed part stacked on top), calls started as a line. */
const volumeChart = (figures: HealthFigures): Html => {
  const { started, ended, failed } = figures.volume;
  const width = 720;
  const height = 180;
  const top = 12;
  const count = figures.buckets.length;
  const highest = Math.max(1, ...started, ...ended);
  const slot = width / count;
  const y = (value: number) => height - (value / highest) * (height - top);
  const bars = figures.buckets.map((bucket, index) => {
    const endedCount = ended[index] ?? 0;
    const failedCount = failed[index] ?? 0;
    const x = index * slot + slot * 0.12;
    const barWidth = Math.max(1, slot * 0.76);
    const okHeight = ((endedCount - failedCount) / highest) * (height - top);
    const failedHeight = (failedCount / highest) * (height - top);
    return html`<g>
      <title>
        ${iso(bucket)}: ${started[index] ?? 0} started, ${endedCount} ended, ${failedCount} with an error
      </title>
      <rect
        class="bar-ok"
        x="${x.toFixed(1)}"
        y="${(height - okHeight).toFixed(1)}"
        width="${barWidth.toFixed(1)}"
        height="${okHeight.toFixed(1)}"
      ></rect>
      <rect
        class="bar-bad"
        x="${x.toFixed(1)}"
        y="${(height - okHeight - failedHeight).toFixed(1)}"
        width="${barWidth.toFixed(1)}"
        height="${failedHeight.toFixed(1)}"
      ></rect>
    </g>`;
  });
  const line = started
    .map((value, index) => `${((index + 0.5) * slot).toFixed(1)},${y(value).toFixed(1)}`)
    .join(' ');
  return html`<figure class="chart">
    <svg
      viewBox="0 0 ${width} ${height}"
      role="img"
      aria-labelledby="volume-title volume-desc"
      preserveAspectRatio="none"
    >
      <title id="volume-title">Call volume per ${bucketLabel(figures.bucketSeconds)}</title>
      <desc id="volume-desc">
        ${sum(started)} calls started, ${sum(ended)} ended, ${sum(failed)} of them with an error; the most in
        one bucket: ${highest}. The numbers are in the table below.
      </desc>
      <line class="axis" x1="0" y1="${height}" x2="${width}" y2="${height}"></line>
      ${bars}
      <polyline class="line-started" points="${line}"></polyline>
    </svg>
    <figcaption>
      <span class="key key-ok">ended</span> <span class="key key-bad">ended with an error</span>
      <span class="key key-started">started</span> · each bar is ${bucketLabel(figures.bucketSeconds)}, from
      ${time(iso(figures.buckets[0]!))} to ${time(iso(figures.to))}; highest ${highest}
    </figcaption>
  </figure>`;
};

const volumeTable = (figures: HealthFigures): Html =>
  html`<details>
    <summary>Call volume as a table</summary>
    <div class="table-wrap">
      <table>
        <caption>
          Calls per ${bucketLabel(figures.bucketSeconds)}
        </caption>
        <thead>
          <tr>
            <th scope="col">From</th>
            <th scope="col">Started</th>
            <th scope="col">Ended</th>
            <th scope="col">With an error</th>
          </tr>
        </thead>
        <tbody>
          ${figures.buckets.map(
            (bucket, index) =>
              html`<tr>
                <td>${time(iso(bucket))}</td>
                <td class="number">${figures.volume.started[index] ?? 0}</td>
                <td class="number">${figures.volume.ended[index] ?? 0}</td>
                <td class="number">${figures.volume.failed[index] ?? 0}</td>
              </tr>`,
          )}
        </tbody>
      </table>
    </div>
  </details>`;

/** A small bar sparkline of a trend, its numbers in its label. */
const sparkline = (trend: readonly number[], what: string): Html => {
  const width = 120;
  const height = 24;
  const highest = Math.max(1, ...trend);
  const slot = width / Math.max(1, trend.length);
  return html`<svg
    class="sparkline"
    viewBox="0 0 ${width} ${height}"
    width="${width}"
    height="${height}"
    role="img"
    aria-label="${attribute(`${what} per bucket, oldest first: ${trend.join(', ')}`)}"
    preserveAspectRatio="none"
  >
    ${trend.map((value, index) => {
      const barHeight = value === 0 ? 0 : Math.max(1.5, (value / highest) * height);
      return html`<rect
        class="bar-bad"
        x="${(index * slot).toFixed(2)}"
        y="${(height - barHeight).toFixed(2)}"
        width="${Math.max(0.8, slot - 0.6).toFixed(2)}"
        height="${barHeight.toFixed(2)}"
      ></rect>`;
    })}
  </svg>`;
};

const failuresByArtifact = (figures: HealthFigures): Html =>
  figures.failures.byArtifact.length === 0
    ? html`<p class="notice">No call ended with an error in this period.</p>`
    : html`<div class="table-wrap">
        <table class="health-groups">
          <caption>
            Failures by debugging artifact, ids, numbers and times replaced by placeholders
            (${figures.failures.byArtifact.length} largest of ${figures.failures.artifactGroupCount} groups)
          </caption>
          <thead>
            <tr>
              <th scope="col">Artifact group</th>
              <th scope="col" class="number">Failures</th>
              <th scope="col">Trend</th>
              <th scope="col">Example</th>
            </tr>
          </thead>
          <tbody>
            ${figures.failures.byArtifact.map(
              (group) =>
                html`<tr>
                  <td class="debug">${text(group.artifactGroup ?? '(no artifact)')}</td>
                  <td class="number">${group.count}</td>
                  <td>${sparkline(group.trend, 'Failures')}</td>
                  <td class="debug">${text(group.example)}</td>
                </tr>`,
            )}
          </tbody>
        </table>
      </div>`;

const failuresByReason = (figures: HealthFigures): Html =>
  figures.failures.byEndedReason.length === 0
    ? html``
    : html`<div class="table-wrap">
        <table class="health-groups">
          <caption>
            Failures by ended reason (${figures.failures.byEndedReason.length} most frequent of
            ${figures.failures.endedReasonCount})
          </caption>
          <thead>
            <tr>
              <th scope="col">Ended reason</th>
              <th scope="col" class="number">Failures</th>
              <th scope="col">Trend</th>
            </tr>
          </thead>
          <tbody>
            ${figures.failures.byEndedReason.map(
              (group) =>
                html`<tr>
                  <td>${text(group.endedReason ?? '(none)')}</td>
                  <td class="number">${group.count}</td>
                  <td>${sparkline(group.trend, 'Failures')}</td>
                </tr>`,
            )}
          </tbody>
        </table>
      </div>`;

/** Per assistant: p50, p95 and p99 as marks on one scale (the longest p99 of the page). */
const durations = (figures: HealthFigures): Html => {
  if (figures.durations.length === 0)
    return html`<p class="notice">No call with a duration ended in this period.</p>`;
  const longest = Math.max(1, ...figures.durations.map((entry) => entry.p99));
  const width = 240;
  const x = (seconds: number) => ((seconds / longest) * (width - 4) + 2).toFixed(1);
  return html`<div class="table-wrap">
    <table>
      <caption>
        Call duration percentiles per assistant (interpolated), calls ended in the period
      </caption>
      <thead>
        <tr>
          <th scope="col">Assistant</th>
          <th scope="col" class="number">Calls</th>
          <th scope="col" class="number">p50</th>
          <th scope="col" class="number">p95</th>
          <th scope="col" class="number">p99</th>
          <th scope="col">Spread (scale to ${formatSeconds(longest)})</th>
        </tr>
      </thead>
      <tbody>
        ${figures.durations.map(
          (entry) =>
            html`<tr>
              <td>${text(entry.assistant ?? '(unknown)')}</td>
              <td class="number">${entry.calls}</td>
              <td class="number">${formatSeconds(entry.p50)}</td>
              <td class="number">${formatSeconds(entry.p95)}</td>
              <td class="number">${formatSeconds(entry.p99)}</td>
              <td>
                <svg
                  class="spread"
                  viewBox="0 0 ${width} 18"
                  width="${width}"
                  height="18"
                  role="img"
                  aria-label="${attribute(`p50 ${formatSeconds(entry.p50)}, p95 ${formatSeconds(entry.p95)}, p99 ${formatSeconds(entry.p99)}`)}"
                >
                  <line class="axis" x1="2" y1="9" x2="${width - 2}" y2="9"></line>
                  <rect
                    class="bar-ok"
                    x="2"
                    y="4"
                    width="${(Number(x(entry.p50)) - 2).toFixed(1)}"
                    height="10"
                  ></rect>
                  <line class="mark-p95" x1="${x(entry.p95)}" y1="1" x2="${x(entry.p95)}" y2="17"></line>
                  <line class="mark-p99" x1="${x(entry.p99)}" y1="1" x2="${x(entry.p99)}" y2="17"></line>
                </svg>
              </td>
            </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
};

const staleCalls = (figures: HealthFigures): Html => {
  const stale = figures.staleCalls;
  const intro = html`<p>
    In progress, with no event for more than ${formatSeconds(stale.thresholdSeconds)} (last event before
    ${time(iso(stale.lastEventBefore))}): the end of the call never arrived, a missed webhook.
    <strong>${stale.total}</strong> in this
    period${stale.total > stale.oldest.length ? html`, the ${stale.oldest.length} oldest shown` : ''}.
  </p>`;
  if (stale.oldest.length === 0) return intro;
  return html`${intro}
    <div class="table-wrap">
      <table>
        <caption>
          Stale calls, oldest last event first
        </caption>
        <thead>
          <tr>
            <th scope="col">Last event</th>
            <th scope="col">Call</th>
            <th scope="col">Caller</th>
            <th scope="col">Assistant</th>
            <th scope="col">First event</th>
          </tr>
        </thead>
        <tbody>
          ${stale.oldest.map(
            (call) =>
              html`<tr>
                <td>${time(iso(call.lastEventAt))}</td>
                <td class="call-id">
                  <a href="/console/calls/${encodeURIComponent(call.callId)}">${call.callId}</a>
                </td>
                <td>${text(call.caller)}</td>
                <td>${text(call.assistant)}</td>
                <td>${time(call.firstEventAt === null ? null : iso(call.firstEventAt))}</td>
              </tr>`,
          )}
        </tbody>
      </table>
    </div>`;
};

const periodLinks = (now: Date, assistant: string | undefined): Html => {
  const choices: [string, number][] = [
    ['Last hour', 3_600],
    ['Last day', 86_400],
    ['Last 7 days', 7 * 86_400],
    ['Last 30 days', 30 * 86_400],
  ];
  return html`<p class="periods">
    ${choices.map(([label, seconds]) => {
      const query = new URLSearchParams({
        from: new Date(now.getTime() - seconds * 1000).toISOString(),
        to: now.toISOString(),
        ...(assistant === undefined ? {} : { assistant }),
      });
      return html`<a href="/console/health?${attribute(query.toString())}">${label}</a> `;
    })}
  </p>`;
};

const field = (name: string, label: string, value: string | undefined, hint: string): Html =>
  html`<div class="field">
    <label for="health-${name}">${label}</label>
    <input
      id="health-${name}"
      name="${name}"
      value="${attribute(value ?? '')}"
      placeholder="${attribute(hint)}"
      autocomplete="off"
    />
  </div>`;

export const healthPage = (view: HealthView, figures: HealthFigures | undefined, now: Date): Html =>
  html`<h1>Health</h1>
    <form class="filters" method="get" action="/console/health" aria-label="Choose the period">
      ${field('from', 'From (ISO 8601)', view.query['from'] ?? (figures && iso(figures.from)), '2026-03-01T00:00:00Z')}
      ${field('to', 'To (exclusive)', view.query['to'] ?? (figures && iso(figures.to)), '2026-03-02T00:00:00Z')}
      ${field('assistant', 'Assistant', view.query['assistant'], '+4930123456')}
      <div class="actions">
        <button type="submit">Show</button>
        <a href="/console/health">Clear</a>
      </div>
    </form>
    ${periodLinks(now, view.assistant)} ${view.errors.length > 0 ? problemList(view.errors) : ''}
    ${
      figures === undefined
        ? ''
        : html`<p class="summary">
              ${time(iso(figures.from))} to
              ${time(iso(figures.to))}${figures.assistant === undefined ? '' : html`, assistant ${figures.assistant}`}:
              <strong>${sum(figures.volume.started)}</strong> calls started,
              <strong>${sum(figures.volume.ended)}</strong> ended,
              <strong>${figures.failures.total}</strong> with an error,
              <strong>${figures.staleCalls.total}</strong> stale.
            </p>
            <section aria-labelledby="volume-heading">
              <h2 id="volume-heading">Call volume</h2>
              ${volumeChart(figures)} ${volumeTable(figures)}
            </section>
            <section aria-labelledby="failures-heading">
              <h2 id="failures-heading">Failures</h2>
              ${failuresByArtifact(figures)} ${failuresByReason(figures)}
            </section>
            <section aria-labelledby="durations-heading">
              <h2 id="durations-heading">Durations</h2>
              ${durations(figures)}
            </section>
            <section aria-labelledby="stale-heading">
              <h2 id="stale-heading">Calls that never ended</h2>
              ${staleCalls(figures)}
            </section>`
    }`;
