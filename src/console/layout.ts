/**
 * The page shell every console page shares: the document head (assets only from this server; the
 * Content-Security-Policy set in `routes.ts` forbids anything else), navigation, sign-out, and the
 * small helpers pages use to show times and statuses the same way.
 */
import { attribute, html, type Html, type HtmlValue } from './html.ts';

export type Section = 'calls' | 'live' | 'health' | 'quarantine' | 'projections' | 'access-log';

const sections: readonly {
  readonly section: Section;
  readonly label: string;
  readonly href: string;
  /** Shown only to a token whose role may open it. */
  readonly restricted?: true;
}[] = [
  { section: 'calls', label: 'Calls', href: '/console/calls' },
  { section: 'live', label: 'Live', href: '/console/live' },
  { section: 'health', label: 'Health', href: '/console/health' },
  { section: 'quarantine', label: 'Quarantine', href: '/console/quarantine' },
  { section: 'projections', label: 'Projections', href: '/console/projections' },
  { section: 'access-log', label: 'Access log', href: '/console/access-log', restricted: true },
];

export interface PageOptions {
  readonly title: string;
  readonly section?: Section;
  /** Present when signed in: the sign-out form needs it. */
  readonly csrf?: string;
  /** Whether the signed-in token may open a restricted page (its link is hidden otherwise). */
  readonly mayOpen?: (href: string) => boolean;
  readonly body: Html;
}

export const page = (options: PageOptions): string =>
  html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="same-origin" />
        <title>${options.title} · calltrail</title>
        <link rel="stylesheet" href="/console/assets/console.css" />
        <script type="module" src="/console/assets/console.js"></script>
      </head>
      <body>
        <a class="skip" href="#main">Skip to content</a>
        <header class="top">
          <span class="brand">calltrail</span>
          ${
            options.csrf === undefined
              ? ''
              : html`<nav aria-label="Console">
                    <ul>
                      ${sections
                        .filter(
                          (entry) => entry.restricted !== true || options.mayOpen?.(entry.href) === true,
                        )
                        .map(
                          (entry) =>
                            html`<li>
                              <a
                                href="${entry.href}"
                                ${entry.section === options.section ? html` aria-current="page"` : ''}
                                >${entry.label}</a
                              >
                            </li>`,
                        )}
                    </ul>
                  </nav>
                  <form method="post" action="/console/sign-out" class="sign-out">
                    <input type="hidden" name="csrf" value="${attribute(options.csrf)}" />
                    <button type="submit">Sign out</button>
                  </form>`
          }
        </header>
        <main id="main">${options.body}</main>
      </body>
    </html> `.text;

/** A time as UTC in the markup; the page script shows it in the viewer's zone, UTC on hover. */
export const time = (iso: string | null): Html =>
  iso === null
    ? html`<span class="none">—</span>`
    : html`<time datetime="${attribute(iso)}" title="${attribute(iso)}"
        >${iso.replace('T', ' ').replace('.000Z', 'Z')}</time
      >`;

const statusLabels: Record<string, string> = {
  'in-progress': 'active',
  ended: 'ended',
  'ended-with-debugging': 'ended with an error',
};

export const statusBadge = (status: string | null): Html =>
  status === null
    ? html`<span class="none">—</span>`
    : html`<span class="status status-${attribute(status)}">${statusLabels[status] ?? status}</span>`;

export const text = (value: string | null | undefined): HtmlValue =>
  value === null || value === undefined || value === '' ? html`<span class="none">—</span>` : value;

export const duration = (seconds: number | null): HtmlValue => {
  if (seconds === null) return html`<span class="none">—</span>`;
  const whole = Math.round(seconds);
  const minutes = Math.floor(whole / 60);
  return minutes > 0 ? `${minutes} min ${whole % 60} s` : `${whole} s`;
};

export const problemList = (errors: readonly { field: string; message: string }[]): Html =>
  html`<div class="problems" role="alert">
    <p>Please correct:</p>
    <ul>
      ${errors.map(
        (error) =>
          html`<li><strong>${error.field.replace(/^querystring\//, '')}</strong> ${error.message}</li>`,
      )}
    </ul>
  </div>`;
