/**
 * Provenance: Flireo's signature material kept with each archived event, exactly as received, so
 * that anyone holding the webhook secret can later re-check that the stored raw body is what Flireo
 * signed (HMAC-SHA256 over `<timestamp>.<raw body>`). For token deliveries only the fact and the
 * token's name are kept, never the token.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { ReceptionMetadata } from '../archive/archived-event.ts';
import type { Authenticated } from './authentication.ts';

/** Longer header values are not Flireo's; keeping a bounded prefix still shows what was sent. */
const maxHeaderLength = 512;

/** The name the single configured webhook token is recorded under. */
export const webhookTokenName = 'webhook-token';

const headerText = (headers: IncomingHttpHeaders, name: string): string | null => {
  const value = headers[name];
  const text = Array.isArray(value) ? value.join(', ') : value;
  return text === undefined ? null : text.slice(0, maxHeaderLength);
};

export const provenanceOf = (
  headers: IncomingHttpHeaders,
  authentication: Authenticated,
): NonNullable<ReceptionMetadata['provenance']> => ({
  signature: headerText(headers, 'x-webhook-signature'),
  timestamp: headerText(headers, 'x-webhook-timestamp'),
  event: headerText(headers, 'x-webhook-event'),
  tokenName: authentication.method === 'token' ? webhookTokenName : null,
});

export type ProvenanceCheck =
  { readonly ok: true } | { readonly ok: false; readonly reason: 'not-signed' | 'malformed' | 'mismatch' };

const keptSignaturePattern = /^(?:sha256=)?([0-9a-fA-F]{64})$/;

/**
 * Re-checks, with the webhook secret, that `rawBody` is exactly what Flireo signed, from the
 * signature material kept in the reception metadata. No clock check: the delivery was on time when
 * it was received; this proves the bytes, not the freshness.
 */
export const verifyProvenance = (
  secret: string,
  rawBody: Buffer,
  provenance: ReceptionMetadata['provenance'],
): ProvenanceCheck => {
  if (provenance?.signature == null || provenance.timestamp == null)
    return { ok: false, reason: 'not-signed' };
  const given = keptSignaturePattern.exec(provenance.signature.trim())?.[1];
  if (given === undefined) return { ok: false, reason: 'malformed' };
  const expected = createHmac('sha256', secret).update(`${provenance.timestamp}.`).update(rawBody).digest();
  return timingSafeEqual(expected, Buffer.from(given, 'hex'))
    ? { ok: true }
    : { ok: false, reason: 'mismatch' };
};
