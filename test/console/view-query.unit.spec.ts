import Type from 'typebox';
import Value from 'typebox/value';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.ts';
import { HttpProblem } from '../../src/http/problem.ts';
import { readViewQuery, viewProblemsOf } from '../../src/console/view-query.ts';

const schema = Type.Object({
  status: Type.Optional(Type.Union([Type.Literal('ended'), Type.Literal('in-progress')])),
  caller: Type.Optional(Type.String({ maxLength: 5 })),
});

describe('readViewQuery', () => {
  it('drops empty fields, trims the rest and keeps them to refill the form', () => {
    const read = readViewQuery(
      { status: 'ended', caller: ' 123 ', empty: '' },
      { known: ['status', 'caller', 'empty'] },
    );
    expect(read).toEqual({ query: { status: 'ended', caller: '123' }, checked: read.query, errors: [] });
  });

  it('names an unknown field and a field given twice, and checks nothing else then', () => {
    const read = readViewQuery({ status: 'bogus', extra: 'x', caller: ['1', '2'] }, { schema });
    expect(read.checked).toBeUndefined();
    expect(read.errors).toEqual([
      { field: 'querystring/extra', message: 'is not a filter of this page' },
      { field: 'querystring/caller', message: 'must be given once' },
    ]);
  });

  it("checks the fields against the page's schema, one problem per field", () => {
    const read = readViewQuery({ status: 'ringing', caller: '1234567' }, { schema });
    expect(read.checked).toBeUndefined();
    expect(read.errors.map((problem) => problem.field)).toEqual(['querystring/status', 'querystring/caller']);
    // The same words as the schema's own error listing gives.
    const listed = [...Value.Errors(schema, read.query)];
    for (const problem of read.errors) {
      const own = listed.find((error) => `querystring${error.instancePath}` === problem.field);
      expect(problem.message).toBe(own?.message);
    }
  });

  it('checks each query afresh with the same schema', () => {
    expect(readViewQuery({ status: 'ended', caller: '12' }, { schema }).errors).toEqual([]);
    expect(readViewQuery({ status: 'ringing' }, { schema }).errors.map((problem) => problem.field)).toEqual([
      'querystring/status',
    ]);
    expect(readViewQuery({ caller: '1' }, { schema }).checked).toEqual({ caller: '1' });
  });
});

describe('viewProblemsOf', () => {
  it("takes a parameter reader's problems and leaves other errors to the caller", () => {
    const problem = { field: 'querystring/from', message: 'is not a time' };
    expect(viewProblemsOf(new InvalidArgumentError([problem]))).toEqual([problem]);
    expect(viewProblemsOf(new HttpProblem(400, 'Bad Request', 'bad', [problem]))).toEqual([problem]);
    expect(viewProblemsOf(new Error('database down'))).toBeUndefined();
  });
});
