/**
 * HTML for the console's server-rendered pages: a tagged template that escapes every interpolated
 * value unless it is already `Html`, so archived text (debugging artifacts, reasons, raw bodies, call
 * ids) can only ever be shown as text. Bidirectional-control characters (the "RTL override" trick
 * that makes text read differently from what it is) and other invisible controls are shown as
 * visible `U+XXXX` marks instead of being applied.
 */

/** Markup that is already safe: only `html` and `raw` make one. */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const entities: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
};

// Bidi embeddings, overrides and isolates, directional marks, and C0/C1 controls other than tab and
// line ends: each would change how the text around it reads without being visible itself.
const invisibleControls =
  // eslint-disable-next-line no-control-regex
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** Escapes text for element content and quoted attribute values. */
export const escapeText = (text: string): string =>
  text.replace(/[&<>"'`]/g, (character) => entities[character]!);

const codePoint = (character: string): string =>
  `U+${character.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;

/**
 * Escaped, with invisible controls shown as marked `U+XXXX` text. The mark has no quote in it, so
 * even inside a quoted attribute value it stays text.
 */
export const escapeUntrusted = (text: string): string =>
  escapeText(text).replace(
    invisibleControls,
    (character) => `<span class=control>${codePoint(character)}</span>`,
  );

/** For attribute values: escaped, with invisible controls as plain `U+XXXX` text. */
export const attribute = (text: string): Html =>
  new Html(escapeText(text).replace(invisibleControls, codePoint));

export type HtmlValue = Html | string | number | boolean | null | undefined | readonly HtmlValue[];

const render = (value: HtmlValue): string => {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return (value as readonly HtmlValue[]).map(render).join('');
  return escapeUntrusted(String(value));
};

export const html = (strings: TemplateStringsArray, ...values: HtmlValue[]): Html => {
  let text = strings[0] ?? '';
  values.forEach((value, index) => {
    text += render(value) + (strings[index + 1] ?? '');
  });
  return new Html(text);
};

/** Trusted markup, for fixed strings only. */
export const raw = (text: string): Html => new Html(text);
