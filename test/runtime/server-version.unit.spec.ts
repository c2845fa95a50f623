import { describe, expect, it } from 'vitest';
import { serverVersionProblem } from '../../src/migrations/runner.ts';

describe('serverVersionProblem', () => {
  it('refuses a PostgreSQL older than 15, naming both versions', () => {
    expect(serverVersionProblem(140011)).toBe(
      'the server runs PostgreSQL 14; calltrail needs PostgreSQL 15 or newer',
    );
  });

  it('accepts 15 and newer', () => {
    expect(serverVersionProblem(150000)).toBeUndefined();
    expect(serverVersionProblem(180004)).toBeUndefined();
  });
});
