/**
 * One delivery attempt: the archived event's exact raw bytes, POSTed with their original content
 * type, Flireo's original `X-Webhook-*` headers, calltrail's own signature over its own timestamp
 * (Flireo's scheme: hex HMAC-SHA256 over `<timestamp>.<raw body>`, because a retry may come long
 * after Flireo's signature went stale), the event id (for the receiver's dedup) and the attempt
 * number. Bounded in time (connect, headers, the whole attempt) and in memory (only the first bytes
 * of the response are read); redirects are not followed.
 */
import { createHmac } from 'node:crypto';
import { Agent, request, type Dispatcher } from 'undici';
import { decodeRawBody } from '../archive/archived-event.ts';
import { rawBodyOf } from '../audit/archived-event-view.ts';
import { contentTypeOf } from '../audit/redelivery.ts';
import { formatPosition, type RecordedEvent } from '../event-store/event-store.ts';

/** What is sent for one archived event, whatever the attempt. */
export interface Payload {
  readonly eventId: string;
  readonly streamName: string;
  readonly position: string;
  readonly body: Buffer;
  readonly contentType: string;
  /** Flireo's headers as received (lower-case names). */
  readonly originalHeaders: Readonly<Record<string, string>>;
}

const provenanceHeaders = [
  ['signature', 'x-webhook-signature'],
  ['timestamp', 'x-webhook-timestamp'],
  ['event', 'x-webhook-event'],
] as const;

/** The payload of an archived event; undefined when the record carries no raw body. */
export const payloadOf = (event: RecordedEvent): Payload | undefined => {
  const raw = rawBodyOf(event);
  if (raw === undefined) return undefined;
  const originalHeaders: Record<string, string> = {};
  const metadata = event.metadata;
  const provenance =
    typeof metadata === 'object' && metadata !== null
      ? (metadata as Record<string, unknown>)['provenance']
      : undefined;
  if (typeof provenance === 'object' && provenance !== null) {
    for (const [field, header] of provenanceHeaders) {
      const value = (provenance as Record<string, unknown>)[field];
      if (typeof value === 'string' && value !== '') originalHeaders[header] = value;
    }
  }
  return {
    eventId: event.id,
    streamName: event.streamName,
    position: formatPosition(event.position),
    body: decodeRawBody(raw),
    contentType: contentTypeOf(event),
    originalHeaders,
  };
};

export const signatureHeaderName = 'x-calltrail-signature';
export const timestampHeaderName = 'x-calltrail-timestamp';

/** `sha256=<hex HMAC-SHA256 over "<timestamp>.<raw body>">`, Flireo's scheme with our secret. */
export const sign = (secret: string, timestamp: string, body: Buffer): string =>
  `sha256=${createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex')}`;

export const requestHeaders = (
  payload: Payload,
  attempt: number,
  secret: string,
  now: Date,
): Record<string, string> => {
  const timestamp = String(Math.floor(now.getTime() / 1000));
  return {
    ...payload.originalHeaders,
    'content-type': payload.contentType,
    'user-agent': 'calltrail-forwarder',
    [timestampHeaderName]: timestamp,
    [signatureHeaderName]: sign(secret, timestamp, payload.body),
    'x-calltrail-event-id': payload.eventId,
    'x-calltrail-attempt': String(attempt),
    'x-calltrail-stream': payload.streamName,
    'x-calltrail-position': payload.position,
  };
};

export interface AttemptResult {
  /** The HTTP status; undefined when none came. */
  readonly status: number | undefined;
  readonly latencyMs: number;
  /** Why no status came, or what was wrong with the answer. */
  readonly error: string | undefined;
  /** The first bytes of the response body, as text. */
  readonly response: string | undefined;
  /** Milliseconds the receiver asked to wait (`Retry-After`), when it did. */
  readonly retryAfterMs: number | undefined;
}

export const createDeliveryAgent = (options: { timeoutMs: number; connections: number }): Agent =>
  new Agent({
    connect: { timeout: options.timeoutMs },
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    connections: options.connections,
    keepAliveTimeout: 4_000,
  });

export const parseRetryAfter = (value: string | string[] | undefined, now: Date): number | undefined => {
  const header = Array.isArray(value) ? value[0] : value;
  if (header === undefined || header.trim() === '') return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now.getTime());
};

const describeError = (error: unknown): string => {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    if (error.name === 'TimeoutError' || error.name === 'AbortError') return 'timed out';
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
    return `${typeof code === 'string' ? `${code} ` : ''}${error.message}${cause}`.slice(0, 500);
  }
  return String(error).slice(0, 500);
};

/** Reads at most `limit` bytes of the body, then stops reading (the connection is closed). */
const readExcerpt = async (body: Dispatcher.ResponseData['body'], limit: number): Promise<string> => {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    length += chunk.length;
    if (length >= limit) break;
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
};

export const attemptDelivery = async (
  destination: URL,
  payload: Payload,
  options: {
    readonly agent: Dispatcher;
    readonly attempt: number;
    readonly secret: string;
    readonly timeoutMs: number;
    readonly excerptBytes: number;
    readonly now: () => Date;
  },
): Promise<AttemptResult> => {
  const started = performance.now();
  const latency = () => Math.round(performance.now() - started);
  const signal = AbortSignal.timeout(options.timeoutMs);
  let status: number | undefined;
  let retryAfterMs: number | undefined;
  try {
    const response = await request(destination, {
      method: 'POST',
      headers: requestHeaders(payload, options.attempt, options.secret, options.now()),
      body: payload.body,
      dispatcher: options.agent,
      signal,
    });
    status = response.statusCode;
    retryAfterMs = parseRetryAfter(response.headers['retry-after'], options.now());
    const response_ = await readExcerpt(response.body, options.excerptBytes);
    const location = response.headers['location'];
    const error =
      status >= 300 && status < 400
        ? `redirect not followed${typeof location === 'string' ? ` (to ${location.slice(0, 200)})` : ''}`
        : undefined;
    return { status, latencyMs: latency(), error, response: response_, retryAfterMs };
  } catch (error) {
    // A status already received stands; what failed was reading the answer's body.
    return {
      status,
      latencyMs: latency(),
      error: status === undefined ? describeError(error) : `reading the response: ${describeError(error)}`,
      response: undefined,
      retryAfterMs,
    };
  }
};
