/**
 * Reading a webhook request's body as the exact bytes received, whatever its content type: the
 * signature is computed over those bytes, and the archive keeps them verbatim. Nothing is parsed here.
 *
 * A body over the limit is not an error thrown mid-stream: reading stops, and what is known about it
 * (its size, the digest of what was read, its first bytes) comes back for the route to answer 413
 * and, for an authenticated sender, to keep a record of it. The whole oversized body is never held.
 */
import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Problem } from '../archive/archived-event.ts';
import { HttpProblem } from '../http/problem.ts';

const contentLengthPattern = /^\d{1,15}$/;

export type ReceivedBody =
  | { readonly kind: 'complete'; readonly bytes: Buffer }
  | {
      readonly kind: 'too-large';
      /** The first bytes received, at most `prefixBytes`. */
      readonly prefix: Buffer;
      readonly receivedBytes: number;
      readonly declaredBytes: number | null;
      /** SHA-256, hex, of every byte read before reading stopped. */
      readonly receivedSha256: string;
    };

export const emptyBody: ReceivedBody = { kind: 'complete', bytes: Buffer.alloc(0) };

const declaredLength = (headers: IncomingHttpHeaders): number | null => {
  const header = headers['content-length'];
  return header !== undefined && contentLengthPattern.test(header) ? Number(header) : null;
};

/** What is kept of a complete body too large to keep whole: its first bytes, size and digest. */
export const truncateBody = (
  bytes: Buffer,
  headers: IncomingHttpHeaders,
  prefixBytes: number,
): ReceivedBody => ({
  kind: 'too-large',
  prefix: Buffer.from(bytes.subarray(0, prefixBytes)),
  receivedBytes: bytes.length,
  declaredBytes: declaredLength(headers),
  receivedSha256: createHash('sha256').update(bytes).digest('hex'),
});

/** A client error about the body itself (truncated, broken stream); Fastify answers with its status. */
export class RequestBodyError extends Error {
  override readonly name = 'RequestBodyError';
  readonly statusCode = 400;
}

export const isReceivedBody = (value: unknown): value is ReceivedBody =>
  typeof value === 'object' &&
  value !== null &&
  'kind' in value &&
  (value.kind === 'complete' || value.kind === 'too-large');

export const readRequestBody = (
  payload: Readable,
  headers: IncomingHttpHeaders,
  limits: {
    readonly bodyLimitBytes: number;
    readonly prefixBytes: number;
    /** Bound on the whole body's arrival: a sender that stalls or trickles gets a 408 and a close. */
    readonly timeoutMs?: number;
  },
): Promise<ReceivedBody> =>
  new Promise((resolve, reject) => {
    const declaredBytes = declaredLength(headers);
    // When the sender declares too much, only the first bytes are read for the record.
    const declaredTooLarge = declaredBytes !== null && declaredBytes > limits.bodyLimitBytes;
    const chunks: Buffer[] = [];
    let receivedBytes = 0;

    const timer =
      limits.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            stop();
            payload.pause();
            reject(
              new HttpProblem(
                408,
                'Request Timeout',
                `the body did not arrive within ${limits.timeoutMs} ms`,
                undefined,
                { connection: 'close' },
              ),
            );
          }, limits.timeoutMs);
    const stop = () => {
      clearTimeout(timer);
      payload.removeListener('data', onData);
      payload.removeListener('end', onEnd);
      payload.removeListener('error', onError);
    };
    const tooLarge = () => {
      stop();
      // The rest is left unread; the route answers with `Connection: close`.
      payload.pause();
      const received = Buffer.concat(chunks, receivedBytes);
      resolve({
        kind: 'too-large',
        prefix: Buffer.from(received.subarray(0, limits.prefixBytes)),
        receivedBytes,
        declaredBytes,
        receivedSha256: createHash('sha256').update(received).digest('hex'),
      });
    };
    function onData(chunk: Buffer | string) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      chunks.push(bytes);
      receivedBytes += bytes.length;
      if (declaredTooLarge ? receivedBytes >= limits.prefixBytes : receivedBytes > limits.bodyLimitBytes) {
        tooLarge();
      }
    }
    function onEnd() {
      if (declaredTooLarge) {
        tooLarge();
        return;
      }
      stop();
      if (declaredBytes !== null && declaredBytes !== receivedBytes) {
        reject(new RequestBodyError('the body is shorter or longer than its Content-Length'));
        return;
      }
      resolve({
        kind: 'complete',
        bytes: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, receivedBytes),
      });
    }
    function onError(error: Error) {
      stop();
      reject(new RequestBodyError('the body could not be read', { cause: error }));
    }

    payload.on('data', onData);
    payload.on('end', onEnd);
    payload.on('error', onError);
    payload.resume();
  });

export type JsonMediaTypeCheck = { readonly ok: true } | { readonly ok: false; readonly message: string };

const jsonMediaType = /^application\/(?:json|[a-z0-9!#$&^_.+-]+\+json)$/;
const utf8Charset = /^"?utf-?8"?$/i;

/** `application/json` or `application/*+json`, in UTF-8 (JSON's only encoding) when a charset is given. */
export const checkJsonMediaType = (contentType: string | undefined): JsonMediaTypeCheck => {
  if (contentType === undefined) return { ok: false, message: 'is required: application/json' };
  const [mediaType = '', ...parameters] = contentType.split(';');
  if (!jsonMediaType.test(mediaType.trim().toLowerCase())) {
    return { ok: false, message: 'must be application/json' };
  }
  for (const parameter of parameters) {
    const [name = '', value = ''] = parameter.split('=');
    if (name.trim().toLowerCase() === 'charset' && !utf8Charset.test(value.trim())) {
      return { ok: false, message: 'charset must be utf-8' };
    }
  }
  return { ok: true };
};

export type ParsedJson =
  { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly problem: Problem };

/**
 * Parses a JSON body. The problem never quotes the body (JSON.parse's own messages do, and bodies may
 * be sensitive): it says only where parsing broke.
 */
export const parseJsonBody = (bytes: Buffer): ParsedJson => {
  if (bytes.length === 0) return { ok: false, problem: { field: 'body', message: 'is empty' } };
  if (!isUtf8(bytes)) return { ok: false, problem: { field: 'body', message: 'is not valid UTF-8' } };
  try {
    return { ok: true, value: JSON.parse(bytes.toString('utf8')) };
  } catch (error) {
    const reason = error instanceof Error ? error.message : '';
    const position = /at position (\d+)/.exec(reason)?.[1];
    const where =
      position !== undefined
        ? ` (at character ${position})`
        : /end of JSON input/.test(reason)
          ? ' (it ends too early)'
          : '';
    return { ok: false, problem: { field: 'body', message: `is not valid JSON${where}` } };
  }
};
