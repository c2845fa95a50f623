/**
 * Strict ISO 8601 / RFC 3339 date-times with a zone, the one reading of a time that calltrail
 * accepts anywhere: in Flireo's events, in stored events the projections fold, and in the audit
 * API's and the command line's time parameters. Stricter than `Date.parse`, which accepts local
 * times and silently rolls 2025-02-30 over into March: an impossible date in evidence is a problem
 * to report, not to repair. Digits past milliseconds are truncated.
 */

const isoDateTime =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;

const isLeapYear = (year: number): boolean => (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
const monthLengths = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const daysInMonth = (year: number, month: number): number =>
  month === 2 && isLeapYear(year) ? 29 : (monthLengths[month - 1] ?? 0);

type Fields = [year: number, month: number, day: number, hour: number, minute: number, second: number];

const isValidTime = (y: number, mo: number, d: number, h: number, mi: number, s: number): boolean =>
  mo >= 1 && mo <= 12 && d >= 1 && d <= daysInMonth(y, mo) && h <= 23 && mi <= 59 && s <= 59;

/** Parses an ISO 8601 date-time with a zone; undefined for anything else. */
export const parseIsoDateTime = (text: string): Date | undefined => {
  const match = isoDateTime.exec(text);
  if (!match) return undefined;
  const [, year, month, day, hour, minute, second, fraction, sign, offsetHour, offsetMinute] = match;
  const [y, mo, d, h, mi, s] = [year, month, day, hour, minute, second].map(Number) as Fields;
  if (!isValidTime(y, mo, d, h, mi, s)) return undefined;
  const offsetMinutes =
    sign === undefined ? 0 : (sign === '-' ? -1 : 1) * (Number(offsetHour) * 60 + Number(offsetMinute));
  if (sign !== undefined && (Number(offsetHour) > 23 || Number(offsetMinute) > 59)) return undefined;
  const milliseconds = fraction === undefined ? 0 : Number(fraction.padEnd(3, '0').slice(0, 3));
  // Not Date.UTC: it reads years 0-99 as 1900-1999.
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi, s, milliseconds);
  date.setTime(date.getTime() - offsetMinutes * 60_000);
  return Number.isNaN(date.getTime()) ? undefined : date;
};

// What ingest stores, already in normal form: `d` a decimal digit, anything else itself.
const canonicalPattern = 'dddd-dd-ddTdd:dd:dd.dddZ';
const digitMark = 'd'.charCodeAt(0);
const zero = '0'.charCodeAt(0);

/** The number written by the digits `text[from, to)` (known to be digits). */
const digitsAt = (text: string, from: number, to: number): number => {
  let value = 0;
  for (let index = from; index < to; index += 1) value = value * 10 + text.charCodeAt(index) - zero;
  return value;
};

/** Whether `text` is in the canonical form and a real time, read without allocating anything. */
const isCanonical = (text: string): boolean => {
  if (text.length !== canonicalPattern.length) return false;
  for (let index = 0; index < canonicalPattern.length; index += 1) {
    const expected = canonicalPattern.charCodeAt(index);
    const actual = text.charCodeAt(index);
    if (expected === digitMark ? actual < zero || actual > zero + 9 : actual !== expected) return false;
  }
  return isValidTime(
    digitsAt(text, 0, 4),
    digitsAt(text, 5, 7),
    digitsAt(text, 8, 10),
    digitsAt(text, 11, 13),
    digitsAt(text, 14, 16),
    digitsAt(text, 17, 19),
  );
};

/**
 * The date-time as ISO 8601 UTC with milliseconds (`toISOString`), or undefined when it is not one
 * `parseIsoDateTime` accepts. Text already in that form comes back as it is, checked without making
 * a Date or a regular-expression match: the projector reads every stored time through here, twice
 * per event, and the garbage of a match per time was a large share of its collection work.
 */
export const normalizeIsoDateTime = (text: string): string | undefined =>
  isCanonical(text) ? text : parseIsoDateTime(text)?.toISOString();
