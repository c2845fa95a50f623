/**
 * The Live page: calls in progress now, events per minute, the latest failures. It starts from the
 * read models and keeps itself current from `GET /live` (the page script does the counting).
 */
import type { ShownCallRow } from '../audit/call-queries.ts';
import { callRow, callsTableHead } from './calls-page.ts';
import { html, type Html } from './html.ts';

const callsTable = (caption: string, rows: readonly ShownCallRow[], mode: string): Html =>
  html`<div class="table-wrap">
    <table
      class="calls"
      data-live-calls="${mode}"
      data-filter="${mode === 'active' ? '{"status":"in-progress"}' : '{"status":"ended-with-debugging"}'}"
    >
      <caption>
        ${caption}
      </caption>
      ${callsTableHead}
      <tbody>
        ${rows.map(callRow)}
      </tbody>
    </table>
  </div>`;

export const livePage = (active: readonly ShownCallRow[], failed: readonly ShownCallRow[]): Html =>
  html`<h1>Live</h1>
    <p class="live-status" role="status" aria-live="polite" data-live-status></p>
    <section aria-labelledby="rate-title" class="rate">
      <h2 id="rate-title">Events per minute</h2>
      <p>Since this page opened: <strong data-events-per-minute>0</strong> events in the last minute.</p>
      <ol class="minutes" data-minutes aria-label="Events in each of the last ten minutes, oldest first"></ol>
    </section>
    <h2>In progress now</h2>
    ${callsTable('Calls in progress, most recent first', active, 'active')}
    <h2>Latest failures</h2>
    ${callsTable('Calls that ended with an error, most recent first', failed, 'failed')}`;
