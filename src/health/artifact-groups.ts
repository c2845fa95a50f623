/**
 * How failures are grouped by their debugging artifact: the same failure reported with different
 * ids, numbers or times must land in one group. The artifact's variable parts are replaced by
 * placeholders, in this order (each rule sees the previous rules' output):
 *
 * 1. UUIDs (any case) become `<uuid>`;
 * 2. ISO 8601 dates and date-times (with optional seconds, fraction and zone) become `<time>`;
 * 3. hexadecimal ids, `0x…` or a token of 6+ hex digits holding both a digit and a letter a–f, become `<hex>`;
 * 4. other ids, a token of 12+ letters, digits, `_` or `-` holding both a digit and a letter, become `<id>`;
 * 5. remaining numbers (digits, with an optional decimal part) become `<n>`;
 * 6. runs of white space become one space, trimmed; the group is cut to 300 characters.
 *
 * A token is bounded by anything other than a letter, digit, `_` or `-`. The rules are regular
 * expressions both PostgreSQL and JavaScript read alike, so the grouping runs in SQL over the read
 * models and the same rule can be checked here.
 */
const tokenCharacter = 'A-Za-z0-9_-';
const tokenStart = `(?<![${tokenCharacter}])`;
const tokenEnd = `(?![${tokenCharacter}])`;

export const artifactPlaceholderRules: readonly (readonly [pattern: string, placeholder: string])[] = [
  ['[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<uuid>'],
  [
    '[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?)?',
    '<time>',
  ],
  [`${tokenStart}(0x[0-9a-f]+|(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{6,})${tokenEnd}`, '<hex>'],
  [
    `${tokenStart}(?=[${tokenCharacter}]*[0-9])(?=[${tokenCharacter}]*[A-Za-z])[${tokenCharacter}]{12,}${tokenEnd}`,
    '<id>',
  ],
  ['[0-9]+([.,][0-9]+)?', '<n>'],
  ['\\s+', ' '],
];

export const maxArtifactGroupLength = 300;

/** The group of one artifact, computed as the SQL does (for tests and documentation). */
export const artifactGroupOf = (artifact: string): string => {
  let group = artifact;
  for (const [pattern, placeholder] of artifactPlaceholderRules) {
    group = group.replace(new RegExp(pattern, 'gi'), placeholder);
  }
  return group.trim().slice(0, maxArtifactGroupLength);
};

const sqlString = (text: string): string => `'${text.replace(/'/g, "''")}'`;

/** The same rule as an SQL expression over `column` (a trusted column name); null stays null. */
export const artifactGroupSql = (column: string): string => {
  let expression = column;
  for (const [pattern, placeholder] of artifactPlaceholderRules) {
    expression = `regexp_replace(${expression}, ${sqlString(pattern)}, ${sqlString(placeholder)}, 'gi')`;
  }
  return `left(btrim(${expression}), ${maxArtifactGroupLength})`;
};
