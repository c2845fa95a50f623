/**
 * How every console page reads its query string: the page's form submits every field, so an empty
 * field counts as absent (and surrounding spaces are dropped); a field the page does not know, or
 * one given twice, is a problem naming it; the rest is checked against the page's schema as the
 * audit API checks its parameters. The page then turns the checked fields into its view, and the
 * parsing errors that step may throw (from the audit API's parameter readers) become its problems.
 */
import type { TSchema } from 'typebox';
import type { Problem } from '../archive/archived-event.ts';
import { InvalidArgumentError } from '../errors.ts';
import { HttpProblem } from '../http/problem.ts';
import { compiledSchema } from '../audit/parameters.ts';

export interface ViewQuery<Checked> {
  /** The fields as given, empty ones dropped (to refill the page's form). */
  readonly query: Record<string, string>;
  /** The query, when it has no problems. */
  readonly checked: Checked | undefined;
  readonly errors: readonly Problem[];
}

/**
 * Reads a page's query. `schema` is the page's fields (an object schema of strings); `known` are
 * its field names when no schema checks them.
 */
export const readViewQuery = <Checked = Record<string, string>>(
  raw: Readonly<Record<string, unknown>>,
  fields: { readonly schema: TSchema & { properties: object } } | { readonly known: readonly string[] },
): ViewQuery<Checked> => {
  const query: Record<string, string> = {};
  const errors: Problem[] = [];
  const isKnown = (name: string) =>
    'schema' in fields ? Object.hasOwn(fields.schema.properties, name) : fields.known.includes(name);
  for (const [name, value] of Object.entries(raw)) {
    if (!isKnown(name))
      errors.push({ field: `querystring/${name}`, message: 'is not a filter of this page' });
    else if (typeof value !== 'string')
      errors.push({ field: `querystring/${name}`, message: 'must be given once' });
    else if (value.trim() !== '') query[name] = value.trim();
  }
  // A query that passes (nearly every request) costs one compiled check; only one that fails is
  // walked again for its problems.
  const validator = errors.length === 0 && 'schema' in fields ? compiledSchema(fields.schema) : undefined;
  if (validator !== undefined && !validator.Check(query)) {
    for (const error of validator.Errors(query)) {
      const field = `querystring${error.instancePath}`;
      if (!errors.some((known) => known.field === field)) errors.push({ field, message: error.message });
    }
  }
  return { query, checked: errors.length === 0 ? (query as Checked) : undefined, errors };
};

/**
 * The problems a parameter reader reported by throwing (a bad time, cursor or limit), or undefined
 * for any other error, which the caller rethrows.
 */
export const viewProblemsOf = (error: unknown): readonly Problem[] | undefined => {
  if (error instanceof InvalidArgumentError) return error.problems;
  if (error instanceof HttpProblem && error.errors !== undefined) return error.errors;
  return undefined;
};
