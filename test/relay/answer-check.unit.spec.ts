/**
 * What counts as a usable answer from the customer's handler, per relayed event type, and the
 * fallbacks calltrail answers with instead.
 */
import { describe, expect, it } from 'vitest';
import { checkAnswer, fallbackAnswer, requestedToolCalls } from '../../src/relay/answer-check.ts';

const json = (value: unknown) => ({
  contentType: 'application/json',
  body: Buffer.from(JSON.stringify(value)),
});

describe('requestedToolCalls', () => {
  it('reads generation 1 tasks and generation 2 tool call lists', () => {
    expect(
      requestedToolCalls({ tasksInitiated: [{ taskId: 't1', taskName: 'lookup' }, { taskName: 'no id' }] }),
    ).toEqual([{ id: 't1', name: 'lookup' }]);
    expect(
      requestedToolCalls({
        message: { toolCallList: [{ id: 'c1', function: { name: 'book' } }, { id: 'c2' }] },
      }),
    ).toEqual([
      { id: 'c1', name: 'book' },
      { id: 'c2', name: null },
    ]);
    expect(requestedToolCalls('not an object')).toEqual([]);
  });
});

describe('checkAnswer', () => {
  const calls = [
    { id: 't1', name: 'lookup' },
    { id: 't2', name: 'book' },
  ];

  it('accepts results naming exactly the requested tool calls', () => {
    const answer = json({
      results: [
        { toolCallId: 't2', result: 1 },
        { toolCallId: 't1', result: 'x' },
      ],
    });
    expect(checkAnswer('tool-calls', answer, calls)).toEqual({ ok: true });
  });

  it.each([
    ['a missing id', { results: [{ toolCallId: 't1', result: 1 }] }, /does not name toolCallId t2/],
    [
      'an id not asked for',
      { results: [{ toolCallId: 't1' }, { toolCallId: 't2' }, { toolCallId: 'x' }] },
      /x, not in the request/,
    ],
    ['no results array', { result: [] }, /\/results must be an array/],
    ['a result without an id', { results: [{ result: 1 }] }, /\/results\/0\/toolCallId/],
    ['an array', [], /JSON object/],
  ])('refuses tool-calls results with %s', (_, body, detail) => {
    const check = checkAnswer('tool-calls', json(body), calls);
    expect(check.ok).toBe(false);
    expect(!check.ok && check.detail).toMatch(detail);
  });

  it('accepts an assistant or an error for assistant-request, and nothing else', () => {
    expect(checkAnswer('assistant-request', json({ assistant: { name: 'a' } }), [])).toEqual({ ok: true });
    expect(checkAnswer('assistant-request', json({ error: 'no assistant for this number' }), [])).toEqual({
      ok: true,
    });
    expect(checkAnswer('assistant-request', json({ assistant: 'a' }), []).ok).toBe(false);
    expect(checkAnswer('assistant-request', json({}), []).ok).toBe(false);
  });

  it('refuses bodies that are not JSON, or not declared as JSON', () => {
    expect(
      checkAnswer('assistant-request', { contentType: 'application/json', body: Buffer.from('{x') }, []).ok,
    ).toBe(false);
    expect(
      checkAnswer('assistant-request', { ...json({ assistant: {} }), contentType: 'text/html' }, []).ok,
    ).toBe(false);
    expect(checkAnswer('assistant-request', { ...json({ assistant: {} }), contentType: null }, []).ok).toBe(
      false,
    );
  });
});

describe('fallbackAnswer', () => {
  it('answers a fixed assistant, or a fixed result per tool when every tool has one', () => {
    const fallbacks = {
      assistantRequest: { assistant: { name: 'f' } },
      toolCalls: { lookup: 'later', book: null },
    };
    expect(fallbackAnswer('assistant-request', fallbacks, [])).toEqual({ assistant: { name: 'f' } });
    expect(
      fallbackAnswer('tool-calls', fallbacks, [
        { id: 't1', name: 'lookup' },
        { id: 't2', name: 'book' },
      ]),
    ).toEqual({
      results: [
        { toolCallId: 't1', result: 'later' },
        { toolCallId: 't2', result: null },
      ],
    });
    expect(fallbackAnswer('tool-calls', fallbacks, [{ id: 't3', name: 'cancel' }])).toBeUndefined();
    expect(fallbackAnswer('tool-calls', {}, [{ id: 't1', name: 'lookup' }])).toBeUndefined();
    expect(fallbackAnswer('assistant-request', {}, [])).toBeUndefined();
  });
});
