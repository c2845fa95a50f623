import { describe, expect, it } from 'vitest';
import { isDatabaseUnavailable, isDataError } from '../../src/database/errors.ts';

const withCode = (code: string, message = 'failed') => Object.assign(new Error(message), { code });

describe('isDatabaseUnavailable', () => {
  it.each([
    ['a refused connection', withCode('ECONNREFUSED')],
    ['a connection exception class', withCode('08006')],
    ['a failed authorization', withCode('28P01')],
    ['too many connections', withCode('53300')],
    ['a server shutting down', withCode('57P01')],
    ['a lock timeout', withCode('55P03')],
    ['a statement timeout', withCode('57014')],
    ['a lost connection without a code', new Error('Connection terminated unexpectedly')],
    [
      'a wrapped outage (as the query builder wraps)',
      new Error('query failed', { cause: withCode('57P03') }),
    ],
    ['one of several attempts', new AggregateError([new Error('x'), withCode('ETIMEDOUT')])],
  ])('says yes for %s', (_name, error) => {
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it.each([
    ['a syntax error', withCode('42601')],
    ['a constraint violation', withCode('23505')],
    ['a plain error', new Error('boom')],
    ['not an error', 'Connection terminated'],
    ['nothing', undefined],
  ])('says no for %s', (_name, error) => {
    expect(isDatabaseUnavailable(error)).toBe(false);
  });
});

describe('isDataError', () => {
  it('is true for data exceptions and constraint violations only', () => {
    expect(isDataError(withCode('22P02'))).toBe(true);
    expect(isDataError(withCode('23505'))).toBe(true);
    expect(isDataError(withCode('57P01'))).toBe(false);
    expect(isDataError(new Error('no code'))).toBe(false);
  });
});
