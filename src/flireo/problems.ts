/**
 * Turns schema validation errors into the problems a 400 answer lists: one per field, the field named
 * as a JSON pointer into the body, the message saying what was expected (never echoing the value,
 * which may be sensitive).
 */
import type { TSchema } from 'typebox';
import type { TLocalizedValidationError } from 'typebox/error';
import type { Problem } from '../archive/archived-event.ts';
import { callIdDescription, callIdPattern, isoDateTimeDescription, isoDateTimePattern } from './schemas.ts';

const escapePointerToken = (token: string): string => token.replace(/~/g, '~0').replace(/\//g, '~1');

export const pointer = (...tokens: readonly string[]): string =>
  tokens.map((token) => `/${escapePointerToken(token)}`).join('');

const patternMessages: Readonly<Record<string, string>> = {
  [callIdPattern]: `must be ${callIdDescription}`,
  [isoDateTimePattern]: `must be ${isoDateTimeDescription}`,
};

/** The sub-schema a `schemaPath` such as `#/properties/eventTime` names. */
const schemaAt = (root: TSchema, schemaPath: string): unknown =>
  schemaPath
    .replace(/^#\/?/, '')
    .split('/')
    .filter((token) => token !== '')
    .map((token) => token.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce<unknown>(
      (schema, token) =>
        typeof schema === 'object' && schema !== null
          ? (schema as Record<string, unknown>)[token]
          : undefined,
      root,
    );

const descriptionAt = (root: TSchema, schemaPath: string): string | undefined => {
  const schema = schemaAt(root, schemaPath);
  const description =
    typeof schema === 'object' && schema !== null
      ? (schema as Record<string, unknown>)['description']
      : undefined;
  return typeof description === 'string' ? description : undefined;
};

export const problemsFromValidation = (
  schema: TSchema,
  errors: readonly TLocalizedValidationError[],
): Problem[] => {
  const messages = new Map<string, string>();
  // A union reports each branch's failure and then its own: only the union's summary is useful.
  const unionFields = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  const add = (field: string, message: string) => {
    if (!messages.has(field)) messages.set(field, message);
  };
  for (const error of errors) {
    if (error.keyword === 'required') {
      for (const property of error.params.requiredProperties) {
        add(`${error.instancePath}${pointer(property)}`, 'is required');
      }
    } else if (error.keyword === 'anyOf') {
      const description = descriptionAt(schema, error.schemaPath);
      add(error.instancePath, description === undefined ? error.message : `must be ${description}`);
    } else if (unionFields.has(error.instancePath)) {
      continue;
    } else if (error.keyword === 'pattern') {
      const { pattern } = error.params;
      const source = typeof pattern === 'string' ? pattern : pattern.source;
      add(error.instancePath, patternMessages[source] ?? 'has an unexpected format');
    } else {
      add(error.instancePath, error.message);
    }
  }
  return [...messages].map(([field, message]) => ({ field: field === '' ? 'body' : field, message }));
};
