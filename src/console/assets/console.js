/* eslint-disable-next-line @typescript-eslint/ban-ts-comment -- browser code; the project is typed for Node, without the DOM */
// @ts-nocheck
/* global document, fetch, EventSource, URLSearchParams, setTimeout, setInterval */
/**
 * The console's only script (an ES module, loaded from this server; the page's Content-Security-Policy
 * allows nothing inline). It shows times in the viewer's zone (UTC on hover) and keeps call tables
 * current from the live feed: for each archived event it asks the server for the call's row as the
 * read model has it, so what the table shows is always what the Calls query would show.
 */

const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const minuteFormat = new Intl.DateTimeFormat(undefined, { timeStyle: 'short' });

/** @param {ParentNode} root */
const localizeTimes = (root) => {
  for (const element of root.querySelectorAll('time[datetime]')) {
    const iso = element.getAttribute('datetime') ?? '';
    const at = new Date(iso);
    if (Number.isNaN(at.getTime())) continue;
    element.textContent = timeFormat.format(at);
    element.setAttribute('title', `${iso.replace('T', ' ').replace(/\.000Z$/, 'Z')} UTC`);
  }
};

localizeTimes(document);

const tables = /** @type {HTMLTableElement[]} */ ([...document.querySelectorAll('table[data-live-calls]')]);
const status = document.querySelector('[data-live-status]');
const perMinute = document.querySelector('[data-events-per-minute]');
const minutesList = document.querySelector('[data-minutes]');

/** @param {string} text */
const say = (text) => {
  if (status) status.textContent = text;
};

/** @type {Map<string, string>} call id → the latest position seen for it */
const wanted = new Map();
/** @type {ReturnType<typeof setTimeout> | undefined} */
let flushTimer;

/** @param {string} a @param {string} b */
const positionAfter = (a, b) => {
  const [ac, ap] = a.split('/').map(BigInt);
  const [bc, bp] = b.split('/').map(BigInt);
  return ac === bc ? ap > bp : ac > bc;
};

const maxAttempts = 10;

/** @param {HTMLTableElement} table @param {string} callId @param {string} position */
const refreshRow = async (table, callId, position) => {
  const filter = JSON.parse(table.dataset['filter'] ?? '{}');
  const parameters = new URLSearchParams();
  for (const [name, value] of Object.entries(filter))
    if (typeof value === 'string') parameters.set(name, value);
  parameters.set('position', position);
  const url = `/console/calls/${encodeURIComponent(callId)}/row?${parameters}`;
  for (let attempt = 0; attempt < maxAttempts; attempt += 1) {
    const response = await fetch(url, { headers: { accept: 'application/json' } });
    if (!response.ok) return;
    const answer = await response.json();
    const body = table.tBodies[0];
    if (!body) return;
    const existing = [...body.rows].find((row) => row.dataset['callId'] === callId);
    if (answer.state === 'pending') {
      // The read models have not applied this event yet: ask again shortly.
      await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** attempt, 2000)));
      continue;
    }
    if (answer.state === 'excluded') {
      existing?.remove();
      return;
    }
    const template = document.createElement('template');
    template.innerHTML = answer.html;
    const row = template.content.querySelector('tr');
    if (!row) return;
    localizeTimes(row);
    if (existing) existing.replaceWith(row);
    else if (table.dataset['liveCalls'] !== 'update') body.prepend(row);
    return;
  }
};

const flush = () => {
  flushTimer = undefined;
  const batch = [...wanted];
  wanted.clear();
  for (const [callId, position] of batch)
    for (const table of tables) void refreshRow(table, callId, position).catch(() => {});
};

/** Events in each of the last ten minutes, counted from the feed since the page opened. */
const minuteCounts = new Map();
const countEvent = () => {
  const minute = Math.floor(Date.now() / 60_000);
  minuteCounts.set(minute, (minuteCounts.get(minute) ?? 0) + 1);
  showRate();
};
const showRate = () => {
  const now = Date.now();
  const minute = Math.floor(now / 60_000);
  for (const key of minuteCounts.keys()) if (key < minute - 9) minuteCounts.delete(key);
  if (perMinute) perMinute.textContent = String(minuteCounts.get(minute) ?? 0);
  if (minutesList) {
    minutesList.replaceChildren(
      ...Array.from({ length: 10 }, (_, index) => {
        const key = minute - 9 + index;
        const count = minuteCounts.get(key) ?? 0;
        const item = document.createElement('li');
        const bar = document.createElement('span');
        bar.className = 'bar';
        bar.style.setProperty('--count', String(Math.min(count, 100)));
        item.append(
          bar,
          document.createTextNode(` ${minuteFormat.format(new Date(key * 60_000))}: ${count}`),
        );
        return item;
      }),
    );
  }
};

if (tables.length > 0 || perMinute) {
  if (perMinute) {
    showRate();
    setInterval(showRate, 10_000);
  }
  /** EventSource retries a dropped stream by itself, but not an answer other than 200 (a 503): then we do. */
  const listen = () => {
    const source = new EventSource('/live');
    source.addEventListener('open', () => say('Live: receiving new events as they are stored.'));
    source.addEventListener('error', () => {
      say('Live: connection lost, reconnecting…');
      if (source.readyState === EventSource.CLOSED) setTimeout(listen, 5_000);
    });
    source.addEventListener('dropped', (event) => {
      const { detail } = JSON.parse(/** @type {MessageEvent} */ (event).data);
      say(`Live: ${detail}`);
    });
    source.addEventListener('message', (event) => {
      const data = JSON.parse(event.data);
      countEvent();
      if (typeof data.callId !== 'string') return;
      const known = wanted.get(data.callId);
      if (known === undefined || positionAfter(data.position, known)) wanted.set(data.callId, data.position);
      flushTimer ??= setTimeout(flush, 150);
    });
  };
  listen();
}
