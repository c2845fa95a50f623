/**
 * Test data: archived call events in the shape ingest stores (`ArchivedCallEvent` data,
 * `ReceptionMetadata` metadata), as proposed events to append through the port or as recorded
 * events for the pure folds.
 */
import { randomUUID } from 'node:crypto';
import {
  archivedEventSchemaVersion,
  type ArchivedCallEvent,
  type CallEventType,
  type CallStatus,
  type ReceptionMetadata,
} from '../../src/archive/archived-event.ts';
import { callStreamName } from '../../src/archive/streams.ts';
import type { GlobalPosition, ProposedEvent, RecordedEvent } from '../../src/event-store/event-store.ts';

export interface CallEventSpec {
  readonly callId: string;
  readonly eventType?: CallEventType;
  /** Event time; null for an event without one. */
  readonly at?: string | null;
  readonly status?: CallStatus | null;
  readonly caller?: string | null;
  readonly assistant?: string | null;
  readonly debuggingArtifact?: string | null;
  readonly endedReason?: string | null;
  readonly durationSeconds?: number | null;
  readonly startedAt?: string | null;
  readonly endedAt?: string | null;
  readonly receivedAt?: string;
  readonly id?: string;
}

export const archivedCallEvent = (
  spec: CallEventSpec,
): { data: ArchivedCallEvent; metadata: ReceptionMetadata } => {
  const eventType = spec.eventType ?? 'status-update';
  const status = spec.status ?? null;
  const data: ArchivedCallEvent = {
    schemaVersion: archivedEventSchemaVersion,
    eventType,
    rawEventType: eventType === 'unknown' ? 'call-recording-ready' : eventType,
    payloadGeneration: 1,
    callId: spec.callId,
    eventTime: spec.at === undefined ? '2026-03-01T10:00:00.000Z' : spec.at,
    status,
    rawStatus: status,
    fromCaller: spec.caller === undefined ? '+4915112345678' : spec.caller,
    toAssistant: spec.assistant === undefined ? '+4930123456' : spec.assistant,
    debuggingArtifact: spec.debuggingArtifact ?? null,
    endedReason: spec.endedReason ?? null,
    durationSeconds: spec.durationSeconds ?? null,
    startedAt: spec.startedAt ?? null,
    endedAt: spec.endedAt ?? null,
    rawBody: JSON.stringify({ eventType, callSession: spec.callId, status }),
    rawBodyEncoding: 'utf8',
  };
  const metadata: ReceptionMetadata = {
    receivedAt: spec.receivedAt ?? '2026-03-01T10:00:05.000Z',
    requestId: randomUUID(),
    sourceAddress: '203.0.113.7',
    signatureVerified: true,
    authentication: 'signature',
    userAgent: 'flireo-webhooks/1.0',
  };
  return { data, metadata };
};

export const proposedCallEvent = (spec: CallEventSpec): ProposedEvent => {
  const { data, metadata } = archivedCallEvent(spec);
  return { id: spec.id ?? randomUUID(), type: data.eventType, data, metadata };
};

export const statusUpdate = (
  callId: string,
  status: CallStatus,
  at: string,
  more: Partial<CallEventSpec> = {},
): CallEventSpec => ({ callId, eventType: 'status-update', status, at, ...more });

export const endOfCallReport = (
  callId: string,
  at: string,
  more: Partial<CallEventSpec> = {},
): CallEventSpec => ({
  callId,
  eventType: 'end-of-call-report',
  at,
  endedReason: 'customer-ended-call',
  ...more,
});

export const toolCalls = (callId: string, at: string, more: Partial<CallEventSpec> = {}): CallEventSpec => ({
  callId,
  eventType: 'tool-calls',
  at,
  ...more,
});

/** A recorded event as the store would deliver it, for the pure folds. */
export const recordedCallEvent = (
  spec: CallEventSpec,
  revision: bigint,
  position: GlobalPosition = { commit: 1000n + revision, prepare: 1000n + revision },
): RecordedEvent => {
  const { data, metadata } = archivedCallEvent(spec);
  return {
    streamName: callStreamName(spec.callId),
    id: spec.id ?? randomUUID(),
    type: data.eventType,
    revision,
    position,
    data,
    metadata,
    storedData: JSON.stringify(data),
    storedMetadata: JSON.stringify(metadata),
    created: new Date('2026-03-01T10:00:06.000Z'),
  };
};

/** A fresh call id, so tests sharing a store never see each other's calls. */
export const newCallId = (label = 'call'): string => `${label}-${randomUUID()}`;
