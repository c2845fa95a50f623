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

// What ingest stores: UTC with milliseconds, already in normal form.
const canonical = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.\d{3}Z$/;

/**
 * The date-time as ISO 8601 UTC with milliseconds (`toISOString`), or undefined when it is not one
 * `parseIsoDateTime` accepts. Text already in that form comes back as it is without making a Date:
 * the projector reads every stored time through here.
 */
export const normalizeIsoDateTime = (text: string): string | undefined => {
  const match = canonical.exec(text);
  if (match) {
    const [y, mo, d, h, mi, s] = match.slice(1, 7).map(Number) as Fields;
    return isValidTime(y, mo, d, h, mi, s) ? text : undefined;
  }
  return parseIsoDateTime(text)?.toISOString();
};
