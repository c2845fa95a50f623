/**
 * Named tokens with roles from `CALLTRAIL_API_TOKENS` and `CALLTRAIL_API_TOKENS_FILE`: the forms
 * accepted, and every bad configuration stopping start-up with the variable (and line) named and
 * the token never shown.
 */
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { grants, roleScopes, scopes } from '../../src/access/scopes.ts';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const auditorToken = 'auditor-token-0123456789';
const operatorToken = 'operator-token-0123456789';

let folder: string;
beforeAll(async () => {
  folder = await mkdtemp(path.join(os.tmpdir(), 'calltrail-tokens-'));
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

const tokensFile = async (text: string): Promise<string> => {
  const file = path.join(folder, `tokens-${Math.random().toString(36).slice(2)}`);
  await writeFile(file, text);
  return file;
};

const failure = (env: NodeJS.ProcessEnv): string => {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('the configuration was accepted');
};

describe('CALLTRAIL_API_TOKENS', () => {
  it('takes name:role:token entries, kept as hashes', () => {
    const { apiTokens } = loadConfig({
      CALLTRAIL_API_TOKENS: `alice:auditor:${auditorToken}, ops:operator:${operatorToken}`,
    });
    expect(apiTokens).toEqual([
      { name: 'alice', role: 'auditor', sha256: sha256(auditorToken), token: auditorToken },
      { name: 'ops', role: 'operator', sha256: sha256(operatorToken), token: operatorToken },
    ]);
  });

  it('keeps the bare form working: each bare token is an admin named token-<n>', () => {
    const { apiTokens } = loadConfig({
      CALLTRAIL_API_TOKENS: `first-token-0123456789,alice:auditor:${auditorToken},second-token-012345678`,
    });
    expect(apiTokens.map(({ name, role }) => `${name}:${role}`)).toEqual([
      'token-1:admin',
      'alice:auditor',
      'token-2:admin',
    ]);
  });

  it('takes a SHA-256 instead of the token', () => {
    const { apiTokens } = loadConfig({
      CALLTRAIL_API_TOKENS: `ci:auditor:sha256:${sha256(auditorToken).toUpperCase()}`,
    });
    expect(apiTokens).toEqual([{ name: 'ci', role: 'auditor', sha256: sha256(auditorToken) }]);
  });

  it.each([
    ['a short token', 'alice:auditor:short', 'entry 1 (alice): the token is shorter than 16'],
    ['a short bare token', 'short', 'entry 1: the token is shorter than 16'],
    ['an unknown role', `alice:reader:${auditorToken}`, 'entry 1 (alice): unknown role'],
    ['a bad name', `al ice:auditor:${auditorToken}`, 'entry 1: the name must be'],
    ['a bad hash', 'alice:auditor:sha256:abc', 'sha256: must be followed by 64 hex digits'],
    ['too many parts', `alice:auditor:x:${auditorToken}`, 'expected name:role:token'],
    ['an empty entry', `alice:auditor:${auditorToken},`, 'entry 2 is empty'],
    [
      'a duplicate name',
      `alice:auditor:${auditorToken},alice:operator:${operatorToken}`,
      'the name alice is given twice',
    ],
    [
      'one token under two names',
      `alice:auditor:${auditorToken},bob:admin:sha256:${sha256(auditorToken)}`,
      'bob and alice are the same token',
    ],
    ['bad characters in a token', 'alice:auditor:token with spaces 0123', 'the token may hold only'],
  ])('refuses %s, naming the variable and the entry, never the token', (_label, value, message) => {
    const text = failure({ CALLTRAIL_API_TOKENS: value });
    expect(text).toContain('CALLTRAIL_API_TOKENS');
    expect(text).toContain(message);
    expect(text).not.toContain(auditorToken);
    expect(text).not.toContain(operatorToken);
  });
});

describe('CALLTRAIL_API_TOKENS_FILE', () => {
  it('takes one entry per line, with comments, blank lines and hashes, beside the variable', async () => {
    const file = await tokensFile(
      [
        '# calltrail API tokens',
        `alice:auditor:sha256:${sha256(auditorToken)}`,
        '',
        `  ops:operator:${operatorToken}  `,
      ].join('\r\n'),
    );
    const { apiTokens } = loadConfig({
      CALLTRAIL_API_TOKENS: 'first-token-0123456789',
      CALLTRAIL_API_TOKENS_FILE: file,
    });
    expect(apiTokens.map(({ name, role, sha256: hash }) => ({ name, role, hash }))).toEqual([
      { name: 'token-1', role: 'admin', hash: sha256('first-token-0123456789') },
      { name: 'alice', role: 'auditor', hash: sha256(auditorToken) },
      { name: 'ops', role: 'operator', hash: sha256(operatorToken) },
    ]);
  });

  it.each([
    [
      'an unknown role',
      `alice:auditor:${auditorToken}\nbob:root:${operatorToken}\n`,
      'line 2 (bob): unknown role',
    ],
    ['a bare token (the file needs names)', `${auditorToken}\n`, 'line 1: expected name:role:token'],
    ['a short token', '\n\nalice:admin:tooshort\n', 'line 3 (alice): the token is shorter'],
  ])('refuses %s, naming the file and line', async (_label, text, message) => {
    const file = await tokensFile(text);
    const problem = failure({ CALLTRAIL_API_TOKENS_FILE: file });
    expect(problem).toContain(`CALLTRAIL_API_TOKENS_FILE: ${file}, ${message}`);
    expect(problem).not.toContain(auditorToken);
  });

  it('refuses a name given both in the variable and in the file', async () => {
    const file = await tokensFile(`alice:auditor:${auditorToken}\n`);
    expect(
      failure({ CALLTRAIL_API_TOKENS: `alice:admin:${operatorToken}`, CALLTRAIL_API_TOKENS_FILE: file }),
    ).toContain('the name alice is given twice');
  });

  it('refuses a file it cannot read, saying why', async () => {
    expect(failure({ CALLTRAIL_API_TOKENS_FILE: path.join(folder, 'missing') })).toMatch(
      /CALLTRAIL_API_TOKENS_FILE: cannot read .*missing \(ENOENT\)/,
    );
    if (process.getuid?.() !== 0) {
      const file = await tokensFile(`alice:auditor:${auditorToken}\n`);
      await chmod(file, 0o000);
      expect(failure({ CALLTRAIL_API_TOKENS_FILE: file })).toContain('(EACCES)');
    }
    expect(failure({ CALLTRAIL_API_TOKENS_FILE: folder })).toContain('(EISDIR)');
  });
});

describe('roles', () => {
  it('grant auditor read and export, operator also replay, controls and metrics, admin everything', () => {
    expect([...roleScopes.auditor]).toEqual(['archive:read', 'archive:export']);
    expect([...roleScopes.operator]).toEqual([
      'archive:read',
      'archive:export',
      'archive:replay',
      'deliveries:control',
      'metrics:read',
    ]);
    expect([...roleScopes.admin]).toEqual([...scopes]);
    expect(grants('operator', 'access-log:read')).toBe(false);
    expect(grants('admin', 'access-log:read')).toBe(true);
  });
});
