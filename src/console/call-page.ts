/**
 * The Call page: the call's state (now, or as calltrail knew it at a chosen time), its timeline in
 * event-time order, and every archived event exactly as stored: reception metadata and the raw body
 * as received, plus the summary and transcript an end-of-call report carries.
 */
import type { ArchivedEventView } from '../audit/archived-event-view.ts';
import type { CallView, TimelineEntryView } from '../audit/call-queries.ts';
import { attribute, html, type Html, type HtmlValue } from './html.ts';
import { duration, problemList, statusBadge, text, time } from './layout.ts';
import type { RelayExchangeView } from '../relay/exchange-queries.ts';
import { relayExchangesSection } from './relay-exchanges-table.ts';

export interface CallPageModel {
  readonly call: CallView;
  readonly timeline: readonly TimelineEntryView[];
  readonly events: readonly ArchivedEventView[];
  /** The time the call is shown as of (ISO), or undefined for now. */
  readonly asOf: string | undefined;
  readonly asOfInput: string | undefined;
  /** More archived events exist than the page shows. */
  readonly moreEvents: boolean;
  readonly errors: readonly { field: string; message: string }[];
  /** Relay mode: the call's relayed requests and what came back. */
  readonly relayExchanges?: readonly RelayExchangeView[];
}

const object = (value: unknown): Record<string, unknown> | undefined =>
  typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;

const textOf = (value: unknown): string | undefined =>
  typeof value === 'string' && value !== '' ? value : undefined;

/** The summary and transcript of an end-of-call report, in either payload generation. */
export const reportTexts = (event: ArchivedEventView): { summary?: string; transcript?: string } => {
  if (event.eventType !== 'end-of-call-report' || event.rawBodyEncoding !== 'utf8' || event.rawBody === null)
    return {};
  let body: Record<string, unknown> | undefined;
  try {
    body = object(JSON.parse(event.rawBody));
  } catch {
    return {};
  }
  const message = object(body?.['message']);
  const artifact = object(message?.['artifact']);
  const summary = textOf(body?.['summaryText']) ?? textOf(message?.['summary']);
  const transcript =
    textOf(body?.['transcriptText']) ?? textOf(message?.['transcript']) ?? textOf(artifact?.['transcript']);
  return {
    ...(summary === undefined ? {} : { summary }),
    ...(transcript === undefined ? {} : { transcript }),
  };
};

const fact = (label: string, value: HtmlValue): Html =>
  html`<dt>${label}</dt>
    <dd>${value}</dd>`;

const timelineTable = (timeline: readonly TimelineEntryView[]): Html =>
  html`<table class="timeline">
    <caption class="visually-hidden">
      Timeline, in event-time order
    </caption>
    <thead>
      <tr>
        <th scope="col">Event time</th>
        <th scope="col">Received</th>
        <th scope="col">Event</th>
        <th scope="col">Status</th>
        <th scope="col">Reason</th>
        <th scope="col">Debug Info</th>
        <th scope="col">Signature</th>
        <th scope="col">Position</th>
      </tr>
    </thead>
    <tbody>
      ${timeline.map(
        (entry) =>
          html`<tr>
            <td>${time(entry.eventTime)}</td>
            <td>${time(entry.receivedAt)}</td>
            <td><a href="#event-${attribute(entry.eventId)}">${entry.eventType}</a></td>
            <td>
              ${entry.status === null ? text(entry.rawStatus) : statusBadge(entry.status)}${
                entry.rawStatus !== null && entry.rawStatus !== entry.status
                  ? html` <span class="raw">(${entry.rawStatus})</span>`
                  : ''
              }
            </td>
            <td>${text(entry.endedReason)}</td>
            <td class="debug">${text(entry.debuggingArtifact)}</td>
            <td>${entry.signatureVerified ? 'verified' : 'not signed'}</td>
            <td class="mono">${entry.position}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;

const receptionFacts = (event: ArchivedEventView): Html => {
  const reception = event.reception;
  const shown = (name: string) => {
    const value = reception[name];
    return value === undefined || value === null
      ? text(null)
      : typeof value === 'string'
        ? value
        : JSON.stringify(value);
  };
  return html`<dl class="facts">
    ${fact('Received at', time(event.receivedAt))} ${fact('Stored at', time(event.storedAt))}
    ${fact('Signature verified', event.signatureVerified === null ? text(null) : event.signatureVerified ? 'yes' : 'no')}
    ${fact('Authentication', html`${shown('authentication')}`)}
    ${fact('Source address', html`${shown('sourceAddress')}`)}
    ${fact('User agent', html`${shown('userAgent')}`)} ${fact('Request id', html`${shown('requestId')}`)}
    ${fact('Stream / revision', html`<span class="mono">${event.stream} / ${event.revision}</span>`)}
    ${fact('Position', html`<span class="mono">${event.position}</span>`)}
    ${fact('Event id', html`<span class="mono">${event.eventId}</span>`)}
  </dl>`;
};

const archivedEvent = (event: ArchivedEventView): Html => {
  const { summary, transcript } = reportTexts(event);
  return html`<section
    class="event"
    id="event-${attribute(event.eventId)}"
    aria-labelledby="event-title-${attribute(event.eventId)}"
  >
    <h3 id="event-title-${attribute(event.eventId)}">
      ${event.eventType} <span class="muted">revision ${event.revision}</span>
    </h3>
    ${receptionFacts(event)}
    ${
      summary === undefined
        ? ''
        : html`<h4>Summary</h4>
            <p class="prose">${summary}</p>`
    }
    ${
      transcript === undefined
        ? ''
        : html`<h4>Transcript</h4>
            <pre class="body">${transcript}</pre>`
    }
    <details>
      <summary>
        Raw body, exactly as
        received${event.rawBodyEncoding === 'base64' ? ' (not UTF-8: shown as base64)' : ''}
      </summary>
      <pre class="body raw-body">${event.rawBody ?? ''}</pre>
    </details>
  </section>`;
};

export const callPage = (model: CallPageModel): Html => {
  const { call } = model;
  const path = `/console/calls/${encodeURIComponent(call.callId)}`;
  return html`<p><a href="/console/calls">← Calls</a></p>
    <h1>Call <span class="mono call-title">${call.callId}</span></h1>
    ${
      model.asOf === undefined
        ? ''
        : html`<p class="notice" role="status">
            Shown as calltrail knew it at ${time(model.asOf)}: only events received by then count.
            <a href="${attribute(path)}">Show the current state</a>
          </p>`
    }
    ${model.errors.length > 0 ? problemList(model.errors) : ''}
    <div class="call-summary">
      <dl class="facts">
        ${fact('Status', statusBadge(call.status))} ${fact('Caller', html`${text(call.caller)}`)}
        ${fact('Assistant', html`${text(call.assistant)}`)} ${fact('Started', time(call.startedAt))}
        ${fact('Ended', time(call.endedAt))} ${fact('Duration', html`${duration(call.durationSeconds)}`)}
        ${fact('Reason', html`${text(call.endedReason)}`)} ${fact('Events', String(call.eventCount))}
      </dl>
      ${
        call.debuggingArtifact === null
          ? ''
          : html`<h2>Debug Info</h2>
              <pre class="body debug-info">${call.debuggingArtifact}</pre>`
      }
    </div>
    <div class="call-actions">
      <form method="get" action="${attribute(path)}" class="as-of">
        <label for="as-of">Show as of (ISO 8601)</label>
        <input
          id="as-of"
          name="asOf"
          value="${attribute(model.asOfInput ?? '')}"
          placeholder="2026-03-01T10:00:00Z"
          autocomplete="off"
        />
        <button type="submit">Show</button>
      </form>
      <a class="button" href="${attribute(`${path}/events.jsonl`)}" download>Download events (JSON lines)</a>
    </div>
    <h2>Timeline</h2>
    ${timelineTable(model.timeline)} ${relayExchangesSection(model.relayExchanges ?? [])}
    <h2>Archived events</h2>
    ${model.events.map(archivedEvent)}
    ${
      model.moreEvents
        ? html`<p class="notice">
            Only the first ${model.events.length} events are shown here; the JSON lines download has them all.
          </p>`
        : ''
    }`;
};
