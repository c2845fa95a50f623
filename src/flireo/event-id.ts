/**
 * calltrail's own event ids. Flireo sends no delivery id and may deliver an event twice, so the id
 * is derived from the event's content: a redelivery gets the same id, and the event store (exact
 * expected revision plus a duplicate check) stores it once.
 *
 * The id is SHA-256 over a canonical form of the parsed body (object keys sorted, no whitespace), so
 * a redelivery that differs only in whitespace or key order is still the same event, while any
 * change of any value is a different one. It is formatted as an RFC 9562 version 8 UUID (the
 * version for name-based ids with a hash other than SHA-1), which both event stores accept.
 */
import { createHash } from 'node:crypto';

const eventIdDomain = 'calltrail/flireo-event/v1\n';
const quarantineIdDomain = 'calltrail/quarantined-request/v1\n';

/**
 * JSON with object keys in code-unit order and no insignificant whitespace. Only for values that came
 * out of `JSON.parse` (no undefined, functions or cycles); depth is bounded by the normalizer.
 */
export const canonicalJson = (value: unknown): string => {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const record = value as Record<string, unknown>;
  const members = Object.keys(record)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`);
  return `{${members.join(',')}}`;
};

/** The first 128 bits of a digest as a version 8, variant 10 UUID. */
export const uuidFromDigest = (digest: Buffer): string => {
  if (digest.length < 16) throw new RangeError('a UUID needs at least 16 bytes of digest');
  const bytes = Buffer.from(digest.subarray(0, 16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x80;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
};

/**
 * The id of an accepted event. `deliveryKey` is for events whose content cannot tell two deliveries
 * apart: a generation 1 assistant-request carries only the two phone numbers, so the same caller
 * phoning twice in a day sends the same bytes twice, and both calls must be archived. The caller then
 * passes something that identifies the delivery (the signed timestamp, or the reception time).
 */
export const flireoEventId = (body: unknown, deliveryKey?: string): string => {
  const hash = createHash('sha256').update(eventIdDomain).update(canonicalJson(body));
  if (deliveryKey !== undefined) hash.update('\n').update(deliveryKey);
  return uuidFromDigest(hash.digest());
};

/**
 * The id of a quarantined request, from the bytes as received (they may not even be JSON), with the
 * reason and content type, so the same bytes refused for different reasons stay separate records.
 */
export const quarantinedRequestId = (parts: {
  readonly reason: string;
  readonly contentType: string | null;
  readonly bytes: Buffer;
}): string =>
  uuidFromDigest(
    createHash('sha256')
      .update(quarantineIdDomain)
      .update(`${parts.reason}\n${parts.contentType ?? ''}\n`)
      .update(parts.bytes)
      .digest(),
  );
