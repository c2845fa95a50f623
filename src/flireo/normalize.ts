/**
 * Normalization: a Flireo server event body, of either documentation generation, to the fields
 * calltrail indexes (`ArchivedCallEvent` minus the raw body), or the list of problems that make it
 * unacceptable. Pure: no clock, no I/O.
 *
 * Sensitive content (transcripts, summaries, recording URLs) is never copied into a normalized field;
 * it stays only in the raw body the caller archives alongside.
 */
import type { ArchivedCallEvent, CallStatus, Problem } from '../archive/archived-event.ts';
import { pointer, problemsFromValidation } from './problems.ts';
import {
  isFlireoEventType,
  validators,
  type Gen1AssistantRequest,
  type Gen1EndOfCallReport,
  type Gen1StatusUpdate,
  type Gen1ToolCalls,
  type Gen1UnknownEvent,
  type Gen2AssistantRequest,
  type Gen2EndOfCallReport,
  type Gen2StatusUpdate,
  type Gen2ToolCalls,
  type Gen2UnknownEvent,
} from './schemas.ts';
import { parseIsoDateTime } from '../iso-date-time.ts';
import { isoFromEpochMilliseconds } from './time.ts';

export type NormalizedCallEvent = Omit<ArchivedCallEvent, 'schemaVersion' | 'rawBody' | 'rawBodyEncoding'>;

export type Normalization =
  | { readonly ok: true; readonly event: NormalizedCallEvent }
  | { readonly ok: false; readonly problems: readonly Problem[] };

/** Far deeper than any Flireo event; bounds the work (and recursion) spent on a hostile body. */
export const maxBodyDepth = 64;

/**
 * Both generations' vocabularies map to one. A status outside it (Flireo may add `ringing`,
 * `forwarding`, ...) is still a real event of a real call: it is archived in the call's stream with
 * `status: null` and the value kept in `rawStatus`, rather than refused and lost.
 */
const statusVocabulary = new Map<string, CallStatus>([
  ['in-progress', 'in-progress'],
  ['ended', 'ended'],
  ['ended-with-debugging', 'ended-with-debugging'],
  ['ended-with-error', 'ended-with-debugging'],
]);

const unifyStatus = (rawStatus: string): CallStatus | null => statusVocabulary.get(rawStatus) ?? null;

type Fields = Omit<NormalizedCallEvent, 'eventTime' | 'startedAt' | 'endedAt'>;

/** ISO times are checked for calendar validity here (the schema checks only their form). */
interface Times {
  readonly eventTime: { readonly field: string; readonly value: string | number } | undefined;
  readonly startedAt?: { readonly field: string; readonly value: string } | undefined;
  readonly endedAt?: { readonly field: string; readonly value: string } | undefined;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const exceedsDepth = (body: unknown, limit: number): boolean => {
  const pending: { value: unknown; depth: number }[] = [{ value: body, depth: 1 }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    if (typeof next.value !== 'object' || next.value === null) continue;
    if (next.depth > limit) return true;
    for (const child of Object.values(next.value)) pending.push({ value: child, depth: next.depth + 1 });
  }
  return false;
};

const rejected = (...problems: Problem[]): Normalization => ({ ok: false, problems });

const withTimes = (fields: Fields, times: Times): Normalization => {
  const problems: Problem[] = [];
  const toIso = (time: { field: string; value: string | number } | undefined): string | null => {
    if (time === undefined) return null;
    if (typeof time.value === 'number') return isoFromEpochMilliseconds(time.value);
    const parsed = parseIsoDateTime(time.value);
    if (parsed === undefined) {
      problems.push({ field: time.field, message: 'is not a valid calendar date and time' });
      return null;
    }
    return parsed.toISOString();
  };
  const event: NormalizedCallEvent = {
    ...fields,
    eventTime: toIso(times.eventTime),
    startedAt: toIso(times.startedAt),
    endedAt: toIso(times.endedAt),
  };
  return problems.length > 0 ? { ok: false, problems } : { ok: true, event };
};

const at = <T extends string | number>(field: string, value: T | undefined) =>
  value === undefined ? undefined : { field, value };

const blank = {
  callId: null,
  status: null,
  rawStatus: null,
  fromCaller: null,
  toAssistant: null,
  debuggingArtifact: null,
  endedReason: null,
  durationSeconds: null,
} as const;

// Generation 1: flat bodies.

const gen1Base = (
  eventType: NormalizedCallEvent['eventType'],
  body: { eventType: string; fromCaller?: string | undefined; toAssistant?: string | undefined },
) => ({
  ...blank,
  eventType,
  rawEventType: body.eventType,
  payloadGeneration: 1 as const,
  fromCaller: body.fromCaller ?? null,
  toAssistant: body.toAssistant ?? null,
});

const gen1StatusUpdate = (body: Gen1StatusUpdate): Normalization =>
  withTimes(
    {
      ...gen1Base('status-update', body),
      callId: body.callSession,
      status: unifyStatus(body.status),
      rawStatus: body.status,
      debuggingArtifact: body['debugging-artifact'] ?? null,
      endedReason: body.reason ?? null,
    },
    { eventTime: at('/eventTimestamp', body.eventTimestamp) },
  );

const gen1EndOfCallReport = (body: Gen1EndOfCallReport): Normalization =>
  withTimes(
    {
      ...gen1Base('end-of-call-report', body),
      callId: body.callId,
      endedReason: body.reason ?? null,
      durationSeconds: body.callLengthSeconds ?? null,
    },
    { eventTime: at('/eventTimestamp', body.eventTimestamp) },
  );

const gen1ToolCalls = (body: Gen1ToolCalls): Normalization =>
  withTimes(
    { ...gen1Base('tool-calls', body), callId: body.callId },
    { eventTime: at('/eventTime', body.eventTime) },
  );

const gen1AssistantRequest = (body: Gen1AssistantRequest): Normalization =>
  withTimes(
    { ...gen1Base('assistant-request', body), callId: body.callSession ?? body.callId ?? null },
    { eventTime: at('/eventTimestamp', body.eventTimestamp) },
  );

const gen1Unknown = (body: Gen1UnknownEvent): Normalization =>
  withTimes(
    {
      ...gen1Base('unknown', body),
      callId: body.callSession ?? body.callId ?? null,
      rawStatus: body.status ?? null,
    },
    {
      eventTime:
        body.eventTimestamp === undefined
          ? at('/eventTime', body.eventTime)
          : at('/eventTimestamp', body.eventTimestamp),
    },
  );

const normalizeGen1 = (body: Record<string, unknown>): Normalization => {
  const rawType = body['eventType'];
  if (typeof rawType !== 'string') return rejected({ field: '/eventType', message: 'must be string' });
  const kind = isFlireoEventType(rawType) ? rawType : 'unknown';
  switch (kind) {
    case 'status-update': {
      const validator = validators.gen1[kind];
      return validator.Check(body)
        ? gen1StatusUpdate(body)
        : rejected(...problemsFromValidation(validator.Type(), validator.Errors(body)));
    }
    case 'end-of-call-report': {
      const validator = validators.gen1[kind];
      return validator.Check(body)
        ? gen1EndOfCallReport(body)
        : rejected(...problemsFromValidation(validator.Type(), validator.Errors(body)));
    }
    case 'tool-calls': {
      const validator = validators.gen1[kind];
      return validator.Check(body)
        ? gen1ToolCalls(body)
        : rejected(...problemsFromValidation(validator.Type(), validator.Errors(body)));
    }
    case 'assistant-request': {
      const validator = validators.gen1[kind];
      return validator.Check(body)
        ? gen1AssistantRequest(body)
        : rejected(...problemsFromValidation(validator.Type(), validator.Errors(body)));
    }
    case 'unknown': {
      const validator = validators.gen1[kind];
      return validator.Check(body)
        ? gen1Unknown(body)
        : rejected(...problemsFromValidation(validator.Type(), validator.Errors(body)));
    }
    default: {
      const exhaustive: never = kind;
      return exhaustive;
    }
  }
};

// Generation 2: `{ message: {...} }` envelopes.

interface Gen2Message {
  type: string;
  phoneNumber?: { number?: string | undefined } | undefined;
  customer?: { number?: string | undefined } | undefined;
  error?: string | undefined;
  call?: { error?: string | undefined } | undefined;
}

const gen2Base = (eventType: NormalizedCallEvent['eventType'], message: Gen2Message) => ({
  ...blank,
  eventType,
  rawEventType: message.type,
  payloadGeneration: 2 as const,
  fromCaller: message.customer?.number ?? null,
  toAssistant: message.phoneNumber?.number ?? null,
  // Flireo does not document where `ended-with-error` keeps its `error`: on the message or on the
  // call. The message's wins when both are present, as the message-level status does; the raw body
  // keeps both.
  debuggingArtifact: message.error ?? message.call?.error ?? null,
});

const gen2StatusUpdate = ({ message }: Gen2StatusUpdate): Normalization => {
  // The envelope documents the status on the call; some deliveries carry it on the message itself.
  const rawStatus = message.status ?? message.call.status;
  if (rawStatus === undefined) return rejected({ field: '/message/status', message: 'is required' });
  return withTimes(
    {
      ...gen2Base('status-update', message),
      callId: message.call.id,
      status: unifyStatus(rawStatus),
      rawStatus,
      endedReason: message.end_reason ?? message.endedReason ?? null,
    },
    { eventTime: at('/message/timestamp', message.timestamp) },
  );
};

const gen2EndOfCallReport = ({ message }: Gen2EndOfCallReport): Normalization =>
  withTimes(
    {
      ...gen2Base('end-of-call-report', message),
      callId: message.call.id,
      endedReason: message.end_reason ?? message.endedReason ?? null,
      durationSeconds: message.durationSeconds ?? null,
    },
    {
      eventTime: at('/message/timestamp', message.timestamp),
      startedAt: at('/message/started_at', message.started_at),
      endedAt: at('/message/ended_at', message.ended_at),
    },
  );

const gen2ToolCalls = ({ message }: Gen2ToolCalls): Normalization =>
  withTimes(
    { ...gen2Base('tool-calls', message), callId: message.call.id },
    { eventTime: at('/message/timestamp', message.timestamp) },
  );

const gen2AssistantRequest = ({ message }: Gen2AssistantRequest): Normalization =>
  withTimes(
    { ...gen2Base('assistant-request', message), callId: message.call?.id ?? null },
    { eventTime: at('/message/timestamp', message.timestamp) },
  );

const gen2Unknown = ({ message }: Gen2UnknownEvent): Normalization =>
  withTimes(
    {
      ...gen2Base('unknown', message),
      callId: message.call?.id ?? null,
      rawStatus: message.status ?? message.call?.status ?? null,
    },
    { eventTime: at('/message/timestamp', message.timestamp) },
  );

const normalizeGen2 = (body: Record<string, unknown>): Normalization => {
  const message = body['message'];
  if (!isObject(message)) return rejected({ field: '/message', message: 'must be object' });
  const rawType = message['type'];
  if (rawType === undefined) return rejected({ field: '/message/type', message: 'is required' });
  if (typeof rawType !== 'string') return rejected({ field: '/message/type', message: 'must be string' });
  const kind = isFlireoEventType(rawType) ? rawType : 'unknown';
  switch (kind) {
    case 'status-update': {
      const validator = validators.gen2[kind];
      return validator.Check(body)
        ? gen2StatusUpdate(body)
        : rejected(...problemsFromValidation(validator.Type(), validator.Errors(body)));
    }
    case 'end-of-call-report': {
      const validator = validators.gen2[kind];
      return validator.Check(body)
        ? gen2EndOfCallReport(body)
        : rejected(...problemsFromValidation(validator.Type(), validator.Errors(body)));
    }
    case 'tool-calls': {
      const validator = validators.gen2[kind];
      return validator.Check(body)
        ? gen2ToolCalls(body)
        : rejected(...problemsFromValidation(validator.Type(), validator.Errors(body)));
    }
    case 'assistant-request': {
      const validator = validators.gen2[kind];
      return validator.Check(body)
        ? gen2AssistantRequest(body)
        : rejected(...problemsFromValidation(validator.Type(), validator.Errors(body)));
    }
    case 'unknown': {
      const validator = validators.gen2[kind];
      return validator.Check(body)
        ? gen2Unknown(body)
        : rejected(...problemsFromValidation(validator.Type(), validator.Errors(body)));
    }
    default: {
      const exhaustive: never = kind;
      return exhaustive;
    }
  }
};

/**
 * A body with `eventType` follows generation 1; one with a `message` envelope, generation 2. The
 * body must already be parsed JSON.
 */
export const normalizeFlireoEvent = (body: unknown): Normalization => {
  if (!isObject(body)) return rejected({ field: 'body', message: 'must be a JSON object' });
  if (exceedsDepth(body, maxBodyDepth)) {
    return rejected({ field: 'body', message: `must not nest deeper than ${maxBodyDepth} levels` });
  }
  if (Object.hasOwn(body, 'eventType')) return normalizeGen1(body);
  if (Object.hasOwn(body, 'message')) return normalizeGen2(body);
  return rejected({
    field: pointer('eventType'),
    message: 'is required (or, in the generation 2 format, a `message` envelope)',
  });
};
