/**
 * API tokens: each has a name (what logs, metrics and the access log show; never the token), a role,
 * and the SHA-256 of the token (what is kept and compared). They come from `CALLTRAIL_API_TOKENS`
 * and the file named by `CALLTRAIL_API_TOKENS_FILE`, in one syntax:
 *
 * - `name:role:token`, e.g. `ci-export:auditor:9f…`;
 * - `name:role:sha256:<64 hex digits>`, the token's SHA-256 instead of the token (so the file never
 *   holds a usable credential);
 * - in the variable only, a bare `token` (the form before roles existed): role `admin`, named
 *   `token-<n>` after its place among the bare tokens, so existing setups keep working.
 *
 * The variable separates entries with commas, the file with lines (blank lines and `#` comments are
 * skipped). Every problem names where it is (the variable and entry, or the file and line), never
 * the token.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

export const roles = ['auditor', 'operator', 'admin'] as const;
export type Role = (typeof roles)[number];

export interface ApiToken {
  readonly name: string;
  readonly role: Role;
  /** Lower-case hex SHA-256 of the token's UTF-8 bytes. */
  readonly sha256: string;
  /**
   * The token itself, when the configuration gave it (not a hash): only so request logs can mask it
   * should a client put it in a URL, and so `calltrail credentials` can show a generated one.
   */
  readonly token?: string;
}

/** What configured and generated tokens must look like: URL-safe, at least 128 bits of text. */
export const minTokenLength = 16;
const tokenPattern = /^[A-Za-z0-9._~-]+$/;
const namePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const hashPattern = /^[0-9a-f]{64}$/i;

export const tokenHash = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

export class ApiTokenError extends Error {
  override readonly name = 'ApiTokenError';
}

/** A token configuration problem, with the variable it is in. */
export class ApiTokensConfigError extends Error {
  override readonly name = 'ApiTokensConfigError';
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(message);
  }
}

const isRole = (text: string): text is Role => (roles as readonly string[]).includes(text);

/** One entry; `where` names it in errors ("entry 2", "line 7"), `bareIndex` numbers bare tokens. */
const parseEntry = (entry: string, where: string, bareIndex: number): ApiToken => {
  const parts = entry.split(':');
  if (parts.length === 1) {
    checkToken(entry, where);
    return { name: `token-${bareIndex}`, role: 'admin', sha256: tokenHash(entry), token: entry };
  }
  const [name = '', role = '', ...secret] = parts;
  if (!namePattern.test(name)) {
    throw new ApiTokenError(
      `${where}: the name must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit`,
    );
  }
  if (!isRole(role)) {
    throw new ApiTokenError(`${where} (${name}): unknown role; use one of ${roles.join(', ')}`);
  }
  if (secret.length === 2 && secret[0] === 'sha256') {
    const hash = secret[1]!;
    if (!hashPattern.test(hash)) {
      throw new ApiTokenError(`${where} (${name}): sha256: must be followed by 64 hex digits`);
    }
    return { name, role, sha256: hash.toLowerCase() };
  }
  if (secret.length !== 1) {
    throw new ApiTokenError(`${where} (${name}): expected name:role:token or name:role:sha256:<hex>`);
  }
  const token = secret[0]!;
  checkToken(token, `${where} (${name})`);
  return { name, role, sha256: tokenHash(token), token };
};

const checkToken = (token: string, where: string): void => {
  if (token.length < minTokenLength) {
    throw new ApiTokenError(`${where}: the token is shorter than ${minTokenLength} characters`);
  }
  if (!tokenPattern.test(token)) {
    throw new ApiTokenError(`${where}: the token may hold only letters, digits, ".", "_", "~" and "-"`);
  }
};

/** `CALLTRAIL_API_TOKENS`: comma-separated entries. */
export const parseApiTokensVariable = (value: string | undefined): ApiToken[] => {
  if (value === undefined) return [];
  let bare = 0;
  return value.split(',').map((raw, index) => {
    const entry = raw.trim();
    if (entry === '') throw new ApiTokenError(`entry ${index + 1} is empty`);
    if (!entry.includes(':')) bare += 1;
    return parseEntry(entry, `entry ${index + 1}`, bare);
  });
};

/** A tokens file's text: one entry per line; blank lines and lines starting with `#` are skipped. */
export const parseApiTokensFile = (text: string): ApiToken[] => {
  const tokens: ApiToken[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const entry = raw.trim();
    if (entry === '' || entry.startsWith('#')) return;
    if (!entry.includes(':')) {
      throw new ApiTokenError(`line ${index + 1}: expected name:role:token or name:role:sha256:<hex>`);
    }
    tokens.push(parseEntry(entry, `line ${index + 1}`, 0));
  });
  return tokens;
};

/** Throws naming the first name or token given twice (a token's name must say who used it). */
export const checkUnique = (tokens: readonly ApiToken[]): void => {
  const names = new Set<string>();
  const hashes = new Map<string, string>();
  for (const token of tokens) {
    if (names.has(token.name)) throw new ApiTokenError(`the name ${token.name} is given twice`);
    names.add(token.name);
    const other = hashes.get(token.sha256);
    if (other !== undefined) {
      throw new ApiTokenError(`${token.name} and ${other} are the same token`);
    }
    hashes.set(token.sha256, token.name);
  }
};

const inVariable = <T>(variable: string, parse: () => T, prefix = ''): T => {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof ApiTokenError)) throw error;
    throw new ApiTokensConfigError(variable, `${prefix}${error.message}`);
  }
};

/**
 * The configured tokens: the variable's, then the file's (read once, at start-up). Throws
 * `ApiTokensConfigError` naming the variable, and the file and line, of the first problem.
 */
export const loadApiTokens = (source: { variable?: string; file?: string }): ApiToken[] => {
  const tokens = inVariable('CALLTRAIL_API_TOKENS', () => parseApiTokensVariable(source.variable));
  if (source.file !== undefined) {
    const file = source.file;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      throw new ApiTokensConfigError('CALLTRAIL_API_TOKENS_FILE', `cannot read ${file} (${code})`);
    }
    tokens.push(...inVariable('CALLTRAIL_API_TOKENS_FILE', () => parseApiTokensFile(text), `${file}, `));
  }
  inVariable(
    source.file === undefined ? 'CALLTRAIL_API_TOKENS' : 'CALLTRAIL_API_TOKENS, CALLTRAIL_API_TOKENS_FILE',
    () => checkUnique(tokens),
  );
  return tokens;
};

/** Bare tokens as the variable's old form gives them (role admin, `token-<n>`): for generated ones. */
export const adminTokens = (tokens: readonly string[]): ApiToken[] =>
  tokens.map((token, index) => ({
    name: `token-${index + 1}`,
    role: 'admin',
    sha256: tokenHash(token),
    token,
  }));
