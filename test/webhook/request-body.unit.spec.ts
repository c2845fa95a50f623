import { createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  RequestBodyError,
  checkJsonMediaType,
  parseJsonBody,
  readRequestBody,
} from '../../src/webhook/request-body.ts';

const limits = { bodyLimitBytes: 100, prefixBytes: 10 };
const chunks = (...parts: string[]) => Readable.from(parts.map((part) => Buffer.from(part)));

describe('readRequestBody', () => {
  it('returns the exact bytes, however they were chunked', async () => {
    const body = await readRequestBody(chunks('{"a"', ':', '"é"}'), { 'content-length': '10' }, limits);
    expect(body.kind).toBe('complete');
    expect(body.kind === 'complete' && body.bytes.toString()).toBe('{"a":"é"}');
  });

  it('reads a body of exactly the limit, and no more', async () => {
    const exact = await readRequestBody(chunks('x'.repeat(100)), {}, limits);
    expect(exact.kind).toBe('complete');
    const over = await readRequestBody(chunks('x'.repeat(60), 'y'.repeat(41)), {}, limits);
    expect(over).toEqual({
      kind: 'too-large',
      prefix: Buffer.from('x'.repeat(10)),
      receivedBytes: 101,
      declaredBytes: null,
      receivedSha256: createHash('sha256')
        .update('x'.repeat(60) + 'y'.repeat(41))
        .digest('hex'),
    });
  });

  it('stops at the prefix when the declared length is already over the limit', async () => {
    const stream = new PassThrough();
    const reading = readRequestBody(stream, { 'content-length': '5000' }, limits);
    stream.write('abcdef');
    stream.write('ghijklmnop');
    const body = await reading;
    expect(body).toMatchObject({ kind: 'too-large', receivedBytes: 16, declaredBytes: 5000 });
    expect(body.kind === 'too-large' && body.prefix.toString()).toBe('abcdefghij');
    expect(stream.isPaused()).toBe(true);
  });

  it('refuses a body that does not match its Content-Length, or a broken stream', async () => {
    await expect(readRequestBody(chunks('abc'), { 'content-length': '4' }, limits)).rejects.toBeInstanceOf(
      RequestBodyError,
    );
    const broken = new PassThrough();
    const reading = readRequestBody(broken, {}, limits);
    broken.destroy(new Error('socket hang up'));
    await expect(reading).rejects.toMatchObject({ name: 'RequestBodyError', statusCode: 400 });
  });
});

describe('checkJsonMediaType', () => {
  it.each([
    'application/json',
    'Application/JSON',
    'application/json; charset=utf-8',
    'application/json;charset="UTF-8"',
    'application/json; charset=utf8',
    'application/cloudevents+json',
    'application/vnd.flireo.event+json; charset=utf-8',
  ])('accepts %s', (contentType) => {
    expect(checkJsonMediaType(contentType)).toEqual({ ok: true });
  });

  it.each([
    [undefined, 'is required: application/json'],
    ['text/plain', 'must be application/json'],
    ['application/jsonp', 'must be application/json'],
    ['application/x-www-form-urlencoded', 'must be application/json'],
    ['text/json', 'must be application/json'],
    ['application/json; charset=iso-8859-1', 'charset must be utf-8'],
    ['application/json; charset=utf-16', 'charset must be utf-8'],
  ])('refuses %s', (contentType, message) => {
    expect(checkJsonMediaType(contentType)).toEqual({ ok: false, message });
  });
});

describe('parseJsonBody', () => {
  it('parses UTF-8 JSON', () => {
    expect(parseJsonBody(Buffer.from('{"status":"ended","n":[1,2]}'))).toEqual({
      ok: true,
      value: { status: 'ended', n: [1, 2] },
    });
  });

  it.each([
    ['', 'is empty'],
    ['{"secret": "abc", ', 'is not valid JSON (at character 18)'],
    ['{"a":', 'is not valid JSON (it ends too early)'],
    ['\ufeff{}', 'is not valid JSON'],
    ['{"token": nope}', 'is not valid JSON'],
  ])('names the problem with %j without quoting it', (text, message) => {
    const result = parseJsonBody(Buffer.from(text));
    expect(result).toEqual({ ok: false, problem: { field: 'body', message } });
  });

  it('refuses bytes that are not UTF-8', () => {
    expect(parseJsonBody(Buffer.from([0x22, 0xc3, 0x28, 0x22]))).toEqual({
      ok: false,
      problem: { field: 'body', message: 'is not valid UTF-8' },
    });
  });
});
