/**
 * Generation 2's `ended-with-error` carries an `error` string whose place the documentation does not
 * give: on the message, or on the call. Both are read, the message's wins, and either reaches the
 * call's debugging artifact through the projection.
 */
import { describe, expect, it } from 'vitest';
import { evolveCall, type CallRow } from '../../projections/calls/read-model.ts';
import { archivedEventSchemaVersion, encodeRawBody } from '../../src/archive/archived-event.ts';
import { callStreamName } from '../../src/archive/streams.ts';
import type { RecordedEvent } from '../../src/event-store/event-store.ts';
import { normalizeFlireoEvent, type NormalizedCallEvent } from '../../src/flireo/normalize.ts';
import { decodeCallEvent } from '../../src/archive/call-event.ts';

const callId = '7c9e6679-7425-40de-944b-e07fc1f90ae7';

const endedWithError = (errors: { message?: string; call?: string }): Record<string, unknown> => ({
  message: {
    type: 'status-update',
    timestamp: '2025-08-28T08:02:03Z',
    call: {
      id: callId,
      type: 'inboundPhoneCall',
      status: 'ended-with-error',
      ...(errors.call === undefined ? {} : { error: errors.call }),
    },
    ...(errors.message === undefined ? {} : { error: errors.message }),
  },
});

const normalized = (body: Record<string, unknown>): NormalizedCallEvent => {
  const result = normalizeFlireoEvent(body);
  if (!result.ok) throw new Error(`not normalized: ${JSON.stringify(result.problems)}`);
  return result.event;
};

/** The call row the projection makes of the one archived event. */
const projected = (body: Record<string, unknown>): CallRow => {
  const event = normalized(body);
  const data = {
    schemaVersion: archivedEventSchemaVersion,
    ...event,
    ...encodeRawBody(Buffer.from(JSON.stringify(body))),
  };
  const metadata = {
    receivedAt: '2025-08-28T08:02:04.000Z',
    requestId: 'r1',
    sourceAddress: '203.0.113.7',
    signatureVerified: true,
    authentication: 'signature',
    userAgent: null,
  };
  const recorded: RecordedEvent = {
    streamName: callStreamName(callId),
    id: 'a0000000-0000-4000-8000-000000000001',
    type: event.eventType,
    revision: 0n,
    position: { commit: 1n, prepare: 1n },
    data,
    metadata,
    storedData: JSON.stringify(data),
    storedMetadata: JSON.stringify(metadata),
    created: new Date('2025-08-28T08:02:04.000Z'),
  };
  return evolveCall(undefined, decodeCallEvent(recorded));
};

describe('generation 2 ended-with-error', () => {
  it('reads the error string under message.call', () => {
    const body = endedWithError({ call: 'transport-failure: SIP 503 from carrier' });
    expect(normalized(body)).toMatchObject({
      status: 'ended-with-debugging',
      rawStatus: 'ended-with-error',
      debuggingArtifact: 'transport-failure: SIP 503 from carrier',
    });
    expect(projected(body)).toMatchObject({
      status: 'ended-with-debugging',
      debuggingArtifact: 'transport-failure: SIP 503 from carrier',
    });
  });

  it('reads the error string on the message', () => {
    const body = endedWithError({ message: 'assistant-request-returned-error' });
    expect(normalized(body).debuggingArtifact).toBe('assistant-request-returned-error');
    expect(projected(body).debuggingArtifact).toBe('assistant-request-returned-error');
  });

  it("prefers the message's error when both are present", () => {
    const body = endedWithError({ message: 'from the message', call: 'from the call' });
    expect(normalized(body).debuggingArtifact).toBe('from the message');
    expect(projected(body).debuggingArtifact).toBe('from the message');
  });

  it('has no debugging artifact when neither carries one', () => {
    expect(normalized(endedWithError({})).debuggingArtifact).toBeNull();
  });

  it('names the field when the call error is not a string', () => {
    const body = endedWithError({});
    ((body['message'] as Record<string, unknown>)['call'] as Record<string, unknown>)['error'] = 42;
    const result = normalizeFlireoEvent(body);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.problems.map((p) => p.field)).toContain('/message/call/error');
  });
});
