/**
 * What the projections fold: a stored record of a `call-<callId>` stream, checked against the
 * archived shape (`ArchivedCallEvent` data, `ReceptionMetadata` metadata) and with its times
 * normalized. A record that does not decode is a poison event: the runner records it as a dead
 * letter and moves on, so one bad record never stalls a read model.
 */
import Compile from 'typebox/compile';
import {
  ArchivedCallEvent,
  ReceptionMetadata,
  type CallEventType,
  type CallStatus,
} from './archived-event.ts';
import { callStreamPrefix } from './streams.ts';
import type { GlobalPosition, RecordedEvent } from '../event-store/event-store.ts';
import { normalizeIsoDateTime } from '../iso-date-time.ts';

export interface CallEvent {
  readonly eventId: string;
  readonly callId: string;
  readonly revision: bigint;
  readonly position: GlobalPosition;
  readonly eventType: CallEventType;
  /** ISO 8601 UTC with milliseconds, normalized; null when the event carries no time. */
  readonly eventTime: string | null;
  readonly status: CallStatus | null;
  readonly rawStatus: string | null;
  readonly caller: string | null;
  readonly assistant: string | null;
  readonly debuggingArtifact: string | null;
  readonly endedReason: string | null;
  readonly durationSeconds: number | null;
  readonly startedAt: string | null;
  readonly endedAt: string | null;
  /** Normalized like `eventTime`. */
  readonly receivedAt: string;
  readonly signatureVerified: boolean;
  readonly payloadGeneration: 1 | 2;
}

/** The record cannot be projected; the message names the field at fault. */
export class PoisonEventError extends Error {
  override readonly name = 'PoisonEventError';
}

const normalizeTime = (field: string, value: string | null): string | null => {
  if (value === null) return null;
  const normalized = normalizeIsoDateTime(value);
  if (normalized === undefined)
    throw new PoisonEventError(`${field}: not an ISO 8601 timestamp: ${JSON.stringify(value)}`);
  // Years outside 0000-9999 would not sort as text and do not fit the read models' timestamps.
  if (normalized.length !== 24)
    throw new PoisonEventError(`${field}: out of range: ${JSON.stringify(value)}`);
  return normalized;
};

// Compiled once: checking every event is the projector's hottest path.
const archivedCallEvent = Compile(ArchivedCallEvent);
const receptionMetadata = Compile(ReceptionMetadata);

const firstProblem = (
  validator: typeof archivedCallEvent | typeof receptionMetadata,
  value: unknown,
  part: string,
): string => {
  const [error] = validator.Errors(value);
  return error === undefined ? part : `${part}${error.instancePath || ''}: ${error.message}`;
};

const decode = (recorded: RecordedEvent): CallEvent => {
  if (!recorded.streamName.startsWith(callStreamPrefix) || recorded.streamName === callStreamPrefix) {
    throw new PoisonEventError(`streamName: not a call stream: ${JSON.stringify(recorded.streamName)}`);
  }
  const callId = recorded.streamName.slice(callStreamPrefix.length);
  const { data, metadata } = recorded;
  if (!archivedCallEvent.Check(data))
    throw new PoisonEventError(firstProblem(archivedCallEvent, data, 'data'));
  if (!receptionMetadata.Check(metadata)) {
    throw new PoisonEventError(firstProblem(receptionMetadata, metadata, 'metadata'));
  }
  if (data.callId !== null && data.callId !== callId) {
    throw new PoisonEventError(
      `data/callId: ${JSON.stringify(data.callId)} does not match stream ${JSON.stringify(recorded.streamName)}`,
    );
  }
  if (data.durationSeconds !== null && !Number.isFinite(data.durationSeconds)) {
    throw new PoisonEventError('data/durationSeconds: not a finite number');
  }
  return {
    eventId: recorded.id,
    callId,
    revision: recorded.revision,
    position: recorded.position,
    eventType: data.eventType,
    eventTime: normalizeTime('data/eventTime', data.eventTime),
    status: data.status,
    rawStatus: data.rawStatus,
    caller: data.fromCaller,
    assistant: data.toAssistant,
    debuggingArtifact: data.debuggingArtifact,
    endedReason: data.endedReason,
    durationSeconds: data.durationSeconds,
    startedAt: normalizeTime('data/startedAt', data.startedAt),
    endedAt: normalizeTime('data/endedAt', data.endedAt),
    receivedAt: normalizeTime('metadata/receivedAt', metadata.receivedAt)!,
    signatureVerified: metadata.signatureVerified,
    payloadGeneration: data.payloadGeneration,
  };
};

/**
 * Each record's decoding (or why it does not decode), kept while the record is: the calls and the
 * call-timeline projections fold the same records of the same batch, and checking a record against
 * the archived shape is most of the projector's own work per event.
 */
const decoded = new WeakMap<RecordedEvent, CallEvent | PoisonEventError>();

/** Throws `PoisonEventError` for a record that is not an archived call event of its stream. */
export const decodeCallEvent = (recorded: RecordedEvent): CallEvent => {
  let result = decoded.get(recorded);
  if (result === undefined) {
    try {
      result = decode(recorded);
    } catch (error) {
      if (!(error instanceof PoisonEventError)) throw error;
      result = error;
    }
    decoded.set(recorded, result);
  }
  if (result instanceof PoisonEventError) throw result;
  return result;
};
