/**
 * The pieces of a console page's filter form, shared by the listings: a view's filters live in its
 * URL, so the form reads them back from the query and links carry them on.
 */
import { attribute, html, type Html } from './html.ts';

/** A query string (with its `?`) of the entries that have a value; empty when none has. */
export const queryString = (entries: Readonly<Record<string, string | undefined>>): string => {
  const parameters = new URLSearchParams();
  for (const [name, value] of Object.entries(entries)) if (value !== undefined) parameters.set(name, value);
  const text = parameters.toString();
  return text === '' ? '' : `?${text}`;
};

/** A labelled text input for the filter `name`, showing its value from the page's query. */
export const textField = (
  name: string,
  label: string,
  query: Readonly<Record<string, string>>,
  hint?: string,
): Html =>
  html`<div class="field">
    <label for="filter-${name}">${label}</label>
    <input
      id="filter-${name}"
      name="${name}"
      value="${attribute(query[name] ?? '')}"
      ${hint === undefined ? '' : html` placeholder="${attribute(hint)}"`}
      autocomplete="off"
    />
  </div>`;

/** A choice of a select, selected when it is the filter's current value (`''`: any). */
export const option = (value: string, label: string, selected: string | undefined): Html =>
  html`<option value="${attribute(value)}" ${value === (selected ?? '') ? html` selected` : ''}>
    ${label}
  </option>`;
