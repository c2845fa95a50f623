/**
 * The relay exchanges of a call on its Call page: for each relayed request (relay mode), where it was
 * sent, what the customer's handler answered and how fast, or how it failed, and what Flireo got.
 */
import type { RelayExchangeView } from '../relay/exchange-queries.ts';
import { attribute, html, type Html } from './html.ts';
import { text, time } from './layout.ts';

const answeredWith: Record<string, string> = {
  destination: "the handler's answer",
  fallback: 'the fallback',
  problem: 'a problem',
};

export const relayExchangesSection = (exchanges: readonly RelayExchangeView[]): Html | '' =>
  exchanges.length === 0
    ? ''
    : html`<h2>Relay exchanges</h2>
        <table class="relay-exchanges">
          <caption class="visually-hidden">
            Relayed requests and the customer's handler's answers, in stream order
          </caption>
          <thead>
            <tr>
              <th scope="col">Forwarded</th>
              <th scope="col">Request</th>
              <th scope="col">Destination</th>
              <th scope="col" class="number">Status</th>
              <th scope="col" class="number">Latency</th>
              <th scope="col">Outcome</th>
              <th scope="col">Flireo got</th>
            </tr>
          </thead>
          <tbody>
            ${exchanges.map(
              (exchange) =>
                html`<tr data-outcome="${attribute(exchange.outcome)}">
                  <td>${time(exchange.startedAt)}</td>
                  <td>
                    <a href="#event-${attribute(exchange.requestEventId)}">${exchange.requestType}</a>
                  </td>
                  <td class="mono">${exchange.destination}</td>
                  <td class="number">
                    ${text(exchange.responseStatus === null ? null : String(exchange.responseStatus))}
                  </td>
                  <td class="number">${exchange.latencyMs.toFixed(1)} ms</td>
                  <td>
                    ${exchange.outcome === 'answered' ? 'answered' : html`failed: ${text(exchange.failure)}`}${
                      exchange.failureDetail === null
                        ? ''
                        : html`<div class="debug">${exchange.failureDetail}</div>`
                    }
                  </td>
                  <td>
                    ${answeredWith[exchange.answeredWith] ?? exchange.answeredWith}
                    (${String(exchange.answerStatus)})
                  </td>
                </tr>`,
            )}
          </tbody>
        </table>`;
