import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  flireoEventId,
  quarantinedRequestId,
  uuidFromDigest,
} from '../../src/flireo/event-id.ts';
import { normalizeFlireoEvent, type Normalization } from '../../src/flireo/normalize.ts';
import { normalizeIsoDateTime, parseIsoDateTime } from '../../src/iso-date-time.ts';
import {
  allExamples,
  callSession,
  gen1EndOfCallReport,
  gen2EndOfCallReport,
  gen2InProgress,
  seedEndedWithDebugging,
  seedExamples,
  seedInProgress,
} from './examples.ts';

const uuidV8 = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const problemsOf = (result: Normalization) => {
  if (result.ok) throw new Error(`expected problems, got ${JSON.stringify(result.event)}`);
  return result.problems;
};

const parsed = (raw: string): Record<string, unknown> => JSON.parse(raw) as Record<string, unknown>;

describe('normalizeFlireoEvent: every documented example', () => {
  it.each(allExamples.map((example) => [example.name, example] as const))('%s', (_name, example) => {
    expect(normalizeFlireoEvent(JSON.parse(example.raw))).toEqual({ ok: true, event: example.normalized });
  });

  it('covers all three of the seed document status-update examples', () => {
    expect(seedExamples.map((e) => (JSON.parse(e.raw) as { status: string }).status)).toEqual([
      'in-progress',
      'ended',
      'ended-with-debugging',
    ]);
  });

  it('never copies transcripts, summaries or recording URLs into normalized fields', () => {
    for (const example of [gen1EndOfCallReport, gen2EndOfCallReport]) {
      const result = normalizeFlireoEvent(JSON.parse(example.raw));
      const text = JSON.stringify(result);
      expect(result.ok).toBe(true);
      for (const secret of ['X-Signature', 'recordings.flireo', 'Bakkerij', 'cake', 'slagroomtaart']) {
        expect(text).not.toContain(secret);
      }
    }
  });

  it('maps both generations onto one status vocabulary', () => {
    const gen2 = (status: string) =>
      normalizeFlireoEvent({
        message: { type: 'status-update', timestamp: '2025-08-28T08:00:00Z', call: { id: 'c1' }, status },
      });
    const gen1 = (status: string) => normalizeFlireoEvent({ ...parsed(seedInProgress.raw), status });
    for (const [raw, unified] of [
      ['in-progress', 'in-progress'],
      ['ended', 'ended'],
      ['ended-with-debugging', 'ended-with-debugging'],
      ['ended-with-error', 'ended-with-debugging'],
      ['forwarding', null],
      ['constructor', null],
    ] as const) {
      for (const result of [gen1(raw), gen2(raw)]) {
        expect(result.ok && result.event.status).toBe(unified);
        expect(result.ok && result.event.rawStatus).toBe(raw);
      }
    }
  });

  it('prefers the message-level status of a generation 2 status-update over the call status', () => {
    const body = parsed(gen2InProgress.raw);
    const message = body['message'] as Record<string, unknown>;
    const result = normalizeFlireoEvent({
      message: { ...message, status: 'ended', call: { id: 'c1', status: 'in-progress' } },
    });
    expect(result.ok && result.event.status).toBe('ended');
  });

  it('accepts extra fields anywhere', () => {
    const result = normalizeFlireoEvent({
      ...parsed(seedEndedWithDebugging.raw),
      newTopLevel: { nested: [1, 2, 3] },
      eventTimestamp: 1756368117035,
    });
    expect(result).toEqual({ ok: true, event: seedEndedWithDebugging.normalized });
  });

  it('reads the call id of an assistant-request when one is present', () => {
    const result = normalizeFlireoEvent({ eventType: 'assistant-request', callSession: 'abc:1' });
    expect(result.ok && result.event.callId).toBe('abc:1');
  });
});

describe('normalizeFlireoEvent: problems name the field', () => {
  const seed = () => parsed(seedInProgress.raw);
  const gen2 = () => parsed(gen2EndOfCallReport.raw);
  const gen2Message = (changes: Record<string, unknown>) => ({
    message: { ...(gen2()['message'] as Record<string, unknown>), ...changes },
  });
  const { callId: _omitCallId, ...eocrWithoutCallId } = parsed(gen1EndOfCallReport.raw);

  it.each([
    [
      'eventTimestamp as a string',
      { ...seed(), eventTimestamp: '1756368117035' },
      '/eventTimestamp',
      'must be integer',
    ],
    ['eventTimestamp negative', { ...seed(), eventTimestamp: -1 }, '/eventTimestamp', undefined],
    ['eventTimestamp fractional', { ...seed(), eventTimestamp: 1.5 }, '/eventTimestamp', 'must be integer'],
    ['callSession as a number', { ...seed(), callSession: 42 }, '/callSession', 'must be string'],
    [
      'callSession unsafe for a stream name',
      { ...seed(), callSession: '../etc passwd' },
      '/callSession',
      "must be 1-128 characters of A-Z, a-z, 0-9, '.', '_', ':', '-'",
    ],
    ['callSession too long', { ...seed(), callSession: 'a'.repeat(129) }, '/callSession', undefined],
    ['status missing', { ...seed(), status: undefined }, '/status', 'is required'],
    ['status as an object', { ...seed(), status: { value: 'ended' } }, '/status', 'must be string'],
    [
      'debugging-artifact as a number',
      { ...seed(), 'debugging-artifact': 7 },
      '/debugging-artifact',
      'must be string',
    ],
    ['fromCaller as a number', { ...seed(), fromCaller: 31612345678 }, '/fromCaller', 'must be string'],
    ['call id missing (status-update)', { ...seed(), callSession: undefined }, '/callSession', 'is required'],
    ['call id missing (end-of-call-report)', eocrWithoutCallId, '/callId', 'is required'],
    [
      'callLengthSeconds as a string',
      { ...parsed(gen1EndOfCallReport.raw), callLengthSeconds: '184' },
      '/callLengthSeconds',
      'must be number',
    ],
    [
      'tool-calls eventTime as a boolean',
      { eventType: 'tool-calls', callId: callSession, eventTime: true },
      '/eventTime',
      'must be Unix time in milliseconds, or an ISO 8601 date-time with a time zone',
    ],
    [
      'tool-calls eventTime without a zone',
      { eventType: 'tool-calls', callId: callSession, eventTime: '2025-08-28T08:00:00' },
      '/eventTime',
      undefined,
    ],
    [
      'tool-calls without eventTime',
      { eventType: 'tool-calls', callId: callSession },
      '/eventTime',
      'is required',
    ],
    ['eventType as a number', { ...seed(), eventType: 3 }, '/eventType', 'must be string'],
    ['body an array', [seed()], 'body', 'must be a JSON object'],
    ['body a string', 'status-update', 'body', 'must be a JSON object'],
    ['neither eventType nor message', { status: 'ended' }, '/eventType', undefined],
    ['message not an object', { message: 'hello' }, '/message', 'must be object'],
    [
      'message without a type',
      { message: { timestamp: '2025-08-28T08:00:00Z' } },
      '/message/type',
      'is required',
    ],
    ['message.type as a number', { message: { type: 1 } }, '/message/type', 'must be string'],
    [
      'message.timestamp as epoch',
      gen2Message({ timestamp: 1756368117035 }),
      '/message/timestamp',
      'must be string',
    ],
    [
      'message.timestamp not ISO',
      gen2Message({ timestamp: '28/08/2025 08:00' }),
      '/message/timestamp',
      'must be an ISO 8601 date-time with a time zone',
    ],
    [
      'message.timestamp an impossible date',
      gen2Message({ timestamp: '2025-02-30T08:00:00Z' }),
      '/message/timestamp',
      'is not a valid calendar date and time',
    ],
    ['message.call missing', gen2Message({ call: undefined }), '/message/call', 'is required'],
    [
      'message.call.id missing',
      gen2Message({ call: { type: 'inboundPhoneCall' } }),
      '/message/call/id',
      'is required',
    ],
    ['message.call.id as a number', gen2Message({ call: { id: 12 } }), '/message/call/id', 'must be string'],
    [
      'durationSeconds as a string',
      gen2Message({ durationSeconds: '186' }),
      '/message/durationSeconds',
      undefined,
    ],
    ['started_at not a date', gen2Message({ started_at: 'yesterday' }), '/message/started_at', undefined],
    [
      'ended_at impossible',
      gen2Message({ ended_at: '2025-08-28T25:00:00Z' }),
      '/message/ended_at',
      undefined,
    ],
    ['error as an object', gen2Message({ error: { code: 'x' } }), '/message/error', 'must be string'],
    [
      'customer.number as a number',
      gen2Message({ customer: { number: 31 } }),
      '/message/customer/number',
      undefined,
    ],
    [
      'gen 2 status-update without any status',
      { message: { type: 'status-update', timestamp: '2025-08-28T08:00:00Z', call: { id: 'c1' } } },
      '/message/status',
      'is required',
    ],
    [
      'unknown type with an unsafe call id',
      { eventType: 'something-new', callSession: 'a/b' },
      '/callSession',
      undefined,
    ],
    [
      'unknown gen 2 type with a bad timestamp',
      { message: { type: 'x', timestamp: 5 } },
      '/message/timestamp',
      undefined,
    ],
  ] as const)('%s', (_name, body, field, message) => {
    const problems = problemsOf(normalizeFlireoEvent(JSON.parse(JSON.stringify(body))));
    expect(problems.map((p) => p.field)).toContain(field);
    if (message !== undefined) expect(problems.find((p) => p.field === field)?.message).toBe(message);
  });

  it('lists every bad field, once each', () => {
    const problems = problemsOf(
      normalizeFlireoEvent({
        eventType: 'status-update',
        eventTimestamp: 'now',
        callSession: 5,
        status: null,
      }),
    );
    expect(problems).toEqual([
      { field: '/eventTimestamp', message: 'must be integer' },
      { field: '/callSession', message: 'must be string' },
      { field: '/status', message: 'must be string' },
    ]);
  });

  it('never echoes the offending value', () => {
    const problems = problemsOf(
      normalizeFlireoEvent({ ...seed(), callSession: 'secret value with spaces', status: 1 }),
    );
    expect(JSON.stringify(problems)).not.toContain('secret value');
  });

  it('refuses bodies nested deeper than the limit, without exhausting the stack', () => {
    let deep: unknown = 'leaf';
    for (let i = 0; i < 100_000; i += 1) deep = [deep];
    const problems = problemsOf(normalizeFlireoEvent({ ...seed(), extra: deep }));
    expect(problems).toEqual([{ field: 'body', message: 'must not nest deeper than 64 levels' }]);
  });
});

describe('event ids', () => {
  const body = parsed(gen2EndOfCallReport.raw);

  it('are version 8 UUIDs', () => {
    for (const example of allExamples) expect(flireoEventId(JSON.parse(example.raw))).toMatch(uuidV8);
    expect(
      quarantinedRequestId({ reason: 'malformed-json', contentType: null, bytes: Buffer.from('{') }),
    ).toMatch(uuidV8);
  });

  it('are the same for the same content, whatever the whitespace and key order', () => {
    const reversed = (value: unknown): unknown =>
      Array.isArray(value)
        ? value.map(reversed)
        : typeof value === 'object' && value !== null
          ? Object.fromEntries(
              Object.entries(value)
                .reverse()
                .map(([k, v]) => [k, reversed(v)]),
            )
          : value;
    const compact = JSON.stringify(body);
    const pretty = JSON.stringify(reversed(body), null, 4);
    expect(pretty).not.toBe(compact);
    expect(flireoEventId(JSON.parse(pretty))).toBe(flireoEventId(JSON.parse(compact)));
    expect(flireoEventId(JSON.parse(seedInProgress.raw))).toBe(
      flireoEventId(JSON.parse(JSON.stringify(JSON.parse(seedInProgress.raw)))),
    );
  });

  it('differ when any value anywhere changes', () => {
    const original = flireoEventId(body);
    const leaves: string[][] = [];
    const walk = (value: unknown, path: string[]) => {
      if (typeof value === 'object' && value !== null) {
        for (const [key, child] of Object.entries(value)) walk(child, [...path, key]);
      } else leaves.push(path);
    };
    walk(body, []);
    expect(leaves.length).toBeGreaterThan(20);
    fc.assert(
      fc.property(
        fc.constantFrom(...leaves),
        fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null)),
        (path, replacement) => {
          const changed = structuredClone(body);
          let target = changed;
          for (const key of path.slice(0, -1)) target = target[key] as Record<string, unknown>;
          const last = path.at(-1)!;
          fc.pre(target[last] !== replacement);
          target[last] = replacement;
          expect(flireoEventId(changed)).not.toBe(original);
        },
      ),
    );
  });

  it('differ when a field is added or removed, or a string becomes a number', () => {
    const seedBody = parsed(seedInProgress.raw);
    const id = flireoEventId(seedBody);
    expect(flireoEventId({ ...seedBody, extra: null })).not.toBe(id);
    const { fromCaller: _dropped, ...withoutCaller } = seedBody;
    expect(flireoEventId(withoutCaller)).not.toBe(id);
    expect(flireoEventId({ a: '1' })).not.toBe(flireoEventId({ a: 1 }));
    expect(flireoEventId({ a: [1, 2] })).not.toBe(flireoEventId({ a: [2, 1] }));
  });

  it('differ by delivery key, for content that cannot tell deliveries apart', () => {
    const request = {
      eventType: 'assistant-request',
      fromCaller: '+31612345678',
      toAssistant: '+31850123456',
    };
    expect(flireoEventId(request, '1756368117')).toBe(flireoEventId(request, '1756368117'));
    expect(flireoEventId(request, '1756368117')).not.toBe(flireoEventId(request, '1756368118'));
    expect(flireoEventId(request, '1756368117')).not.toBe(flireoEventId(request));
  });

  it('of quarantined requests come from the bytes as received', () => {
    const id = (bytes: string, reason = 'malformed-json', contentType: string | null = 'application/json') =>
      quarantinedRequestId({ reason, contentType, bytes: Buffer.from(bytes) });
    expect(id('{"a":1')).toBe(id('{"a":1'));
    expect(id('{"a":1')).not.toBe(id('{"a": 1'));
    expect(id('{"a":1')).not.toBe(id('{"a":1', 'invalid-event'));
    expect(id('{"a":1')).not.toBe(id('{"a":1', 'malformed-json', 'text/plain'));
  });

  it('canonical JSON sorts keys at every level and keeps array order', () => {
    expect(canonicalJson({ b: [{ d: 1, c: 2 }, 'x'], a: { f: null, e: true } })).toBe(
      '{"a":{"e":true,"f":null},"b":[{"c":2,"d":1},"x"]}',
    );
    expect(canonicalJson(JSON.parse('{"__proto__":{"x":1},"a":"\\u00e9"}'))).toBe(
      '{"__proto__":{"x":1},"a":"é"}',
    );
  });

  it('uuidFromDigest sets the version and variant bits only', () => {
    expect(uuidFromDigest(Buffer.alloc(32, 0xff))).toBe('ffffffff-ffff-8fff-bfff-ffffffffffff');
    expect(uuidFromDigest(Buffer.alloc(32, 0x00))).toBe('00000000-0000-8000-8000-000000000000');
    expect(() => uuidFromDigest(Buffer.alloc(8))).toThrow(RangeError);
  });
});

describe('parseIsoDateTime', () => {
  it.each([
    ['2025-08-28T08:01:57.035Z', '2025-08-28T08:01:57.035Z'],
    ['2025-08-28T08:01:57Z', '2025-08-28T08:01:57.000Z'],
    ['2025-08-28T10:01:57.1+02:00', '2025-08-28T08:01:57.100Z'],
    ['2025-08-28T08:01:57.035999999z', '2025-08-28T08:01:57.035Z'],
    ['2025-08-28T00:30:00-01:30', '2025-08-28T02:00:00.000Z'],
    ['2024-02-29T00:00:00Z', '2024-02-29T00:00:00.000Z'],
    ['0050-01-01T00:00:00Z', '0050-01-01T00:00:00.000Z'],
  ])('%s -> %s', (text, iso) => {
    expect(parseIsoDateTime(text)?.toISOString()).toBe(iso);
  });

  it.each([
    '2025-02-29T00:00:00Z',
    '2025-04-31T00:00:00Z',
    '2025-13-01T00:00:00Z',
    '2025-08-28T24:00:00Z',
    '2025-08-28T08:60:00Z',
    '2025-08-28T08:00:60Z',
    '2025-08-28T08:00:00+24:00',
    '2025-08-28T08:00:00',
    '2025-08-28 08:00:00Z',
    '1756368117035',
  ])('refuses %s', (text) => {
    expect(parseIsoDateTime(text)).toBeUndefined();
  });
});

describe('normalizeIsoDateTime', () => {
  it.each([
    ['2025-08-28T08:01:57.035Z', '2025-08-28T08:01:57.035Z'],
    ['2024-02-29T23:59:59.999Z', '2024-02-29T23:59:59.999Z'],
    ['0000-01-01T00:00:00.000Z', '0000-01-01T00:00:00.000Z'],
    ['2025-08-28T10:01:57.1+02:00', '2025-08-28T08:01:57.100Z'],
    ['2025-08-28T08:01:57.035z', '2025-08-28T08:01:57.035Z'],
    ['2025-08-28T08:01:57Z', '2025-08-28T08:01:57.000Z'],
  ])('%s -> %s', (text, iso) => {
    expect(normalizeIsoDateTime(text)).toBe(iso);
  });

  it.each([
    '2025-02-29T00:00:00.000Z',
    '2025-04-31T00:00:00.000Z',
    '2025-00-01T00:00:00.000Z',
    '2025-13-01T00:00:00.000Z',
    '2025-08-00T00:00:00.000Z',
    '2025-08-28T24:00:00.000Z',
    '2025-08-28T08:60:00.000Z',
    '2025-08-28T08:00:60.000Z',
    '2025-08-28T08:00:00.0a0Z',
    '2025-08-28T08:00:00.000',
    '2025-08-28 08:00:00.000Z',
    '2025-08-28T08:00:00.000Z ',
    '２025-08-28T08:00:00.000Z',
    '٢٠٢٥-08-28T08:00:00.000Z',
    '2025/08/28T08:00:00.000Z',
  ])('refuses %s', (text) => {
    expect(normalizeIsoDateTime(text)).toBeUndefined();
  });

  it('agrees with parsing the text into a Date and formatting it, for any text', () => {
    // Strings of the canonical shape with any digits (impossible dates included), one character of
    // it replaced by anything, and arbitrary strings.
    const digit = fc.constantFrom(...'0123456789');
    const digits = (count: number) =>
      fc.array(digit, { minLength: count, maxLength: count }).map((d) => d.join(''));
    const shaped = fc
      .tuple(digits(4), digits(2), digits(2), digits(2), digits(2), digits(2), digits(3))
      .map(([y, mo, d, h, mi, s, ms]) => `${y}-${mo}-${d}T${h}:${mi}:${s}.${ms}Z`);
    const mutated = fc
      .tuple(shaped, fc.nat(23), fc.string({ minLength: 1, maxLength: 1, unit: 'binary' }))
      .map(([text, at, character]) => `${text.slice(0, at)}${character}${text.slice(at + 1)}`);
    fc.assert(
      fc.property(fc.oneof(shaped, mutated, fc.string()), (text) => {
        expect(normalizeIsoDateTime(text)).toBe(parseIsoDateTime(text)?.toISOString());
      }),
      { numRuns: 1000 },
    );
  });
});
