/**
 * The shapes of Flireo server events, both generations of Flireo's documentation, declared once.
 * They serve the webhook's validation (compiled) and the OpenAPI description of the request body.
 *
 * Liberal where Flireo may add fields: every object allows extra properties, and documented fields
 * calltrail never reads (transcripts, summaries, recordings, tool payloads, ...) are not typed, so a
 * change in their shape can never make calltrail refuse an event. Strict on the fields calltrail
 * relies on: a wrong type there is a validation problem naming the field.
 */
import Type from 'typebox';
import { Compile } from 'typebox/compile';

export const flireoEventTypes = [
  'status-update',
  'end-of-call-report',
  'tool-calls',
  'assistant-request',
] as const;
export type FlireoEventType = (typeof flireoEventTypes)[number];

export const isFlireoEventType = (value: string): value is FlireoEventType =>
  (flireoEventTypes as readonly string[]).includes(value);

/**
 * A call id becomes part of a stream name (`call-<id>`), so only characters that are safe there are
 * accepted. Flireo's ids are UUIDs, well inside this.
 */
export const callIdPattern = '^[A-Za-z0-9._:-]{1,128}$';
export const callIdDescription = "1-128 characters of A-Z, a-z, 0-9, '.', '_', ':', '-'";

/** ISO 8601 date and time with an explicit zone; the calendar check happens when it is parsed. */
export const isoDateTimePattern =
  '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?(Z|z|[+-]\\d{2}:\\d{2})$';
export const isoDateTimeDescription = 'an ISO 8601 date-time with a time zone';

/** The largest time a JavaScript Date can hold, in epoch milliseconds. */
const maxEpochMilliseconds = 8_640_000_000_000_000;

const CallId = Type.String({ pattern: callIdPattern, description: `The call's id: ${callIdDescription}` });
const EpochMilliseconds = Type.Integer({
  minimum: 0,
  maximum: maxEpochMilliseconds,
  description: 'Unix time in milliseconds',
});
const IsoDateTime = Type.String({ pattern: isoDateTimePattern, description: isoDateTimeDescription });
/** Generation 1's `eventTime` (tool-calls) is not specified further: epoch ms and ISO 8601 both occur in practice. */
const EventTime = Type.Union([EpochMilliseconds, IsoDateTime], {
  description: 'Unix time in milliseconds, or an ISO 8601 date-time with a time zone',
});
const Seconds = Type.Number({ minimum: 0, description: 'Seconds' });
const Text = Type.String();

// Generation 1: flat bodies.

const gen1Parties = {
  fromCaller: Type.Optional(Type.String({ description: "The caller's number (E.164)" })),
  toAssistant: Type.Optional(Type.String({ description: "The assistant's number (E.164)" })),
};

export const Gen1StatusUpdate = Type.Object(
  {
    eventType: Type.Literal('status-update'),
    eventTimestamp: EpochMilliseconds,
    callSession: CallId,
    status: Type.String({ description: '`in-progress`, `ended` or `ended-with-debugging`' }),
    'debugging-artifact': Type.Optional(Type.String({ description: 'Why the call ended with an error' })),
    reason: Type.Optional(Type.String({ description: 'Why the call ended, e.g. `customer-ended-call`' })),
    ...gen1Parties,
  },
  { description: 'Generation 1 status-update' },
);
export type Gen1StatusUpdate = Type.Static<typeof Gen1StatusUpdate>;

export const Gen1EndOfCallReport = Type.Object(
  {
    eventType: Type.Literal('end-of-call-report'),
    eventTimestamp: EpochMilliseconds,
    callId: CallId,
    callLengthSeconds: Type.Optional(Seconds),
    reason: Type.Optional(Text),
    ...gen1Parties,
  },
  {
    description:
      'Generation 1 end-of-call-report; also carries transcriptText, summaryText and recordings.linkStereo, archived as received',
  },
);
export type Gen1EndOfCallReport = Type.Static<typeof Gen1EndOfCallReport>;

export const Gen1ToolCalls = Type.Object(
  {
    eventType: Type.Literal('tool-calls'),
    eventTime: EventTime,
    callId: CallId,
    ...gen1Parties,
  },
  {
    description:
      'Generation 1 tool-calls; also carries tasksInitiated and userMetadata, archived as received',
  },
);
export type Gen1ToolCalls = Type.Static<typeof Gen1ToolCalls>;

/** Documented with neither a call id nor a time; either is used when present. */
export const Gen1AssistantRequest = Type.Object(
  {
    eventType: Type.Literal('assistant-request'),
    callSession: Type.Optional(CallId),
    callId: Type.Optional(CallId),
    eventTimestamp: Type.Optional(EpochMilliseconds),
    ...gen1Parties,
  },
  { description: 'Generation 1 assistant-request' },
);
export type Gen1AssistantRequest = Type.Static<typeof Gen1AssistantRequest>;

/** A type Flireo may add later: whatever of the familiar fields it carries must still be well typed. */
export const Gen1UnknownEvent = Type.Object(
  {
    eventType: Type.String(),
    callSession: Type.Optional(CallId),
    callId: Type.Optional(CallId),
    eventTimestamp: Type.Optional(EpochMilliseconds),
    eventTime: Type.Optional(EventTime),
    status: Type.Optional(Text),
    ...gen1Parties,
  },
  { description: 'Generation 1 event of a type calltrail does not know yet, archived as received' },
);
export type Gen1UnknownEvent = Type.Static<typeof Gen1UnknownEvent>;

// Generation 2: `{ message: {...} }` envelopes.

/** `ended-with-error`'s error string; the documentation does not say where it sits, so both places are read. */
const Gen2Error = Type.Optional(Text);
const Gen2Call = Type.Object({
  id: CallId,
  type: Type.Optional(Text),
  status: Type.Optional(Text),
  error: Gen2Error,
});
const Gen2OptionalCall = Type.Object({
  id: Type.Optional(CallId),
  type: Type.Optional(Text),
  status: Type.Optional(Text),
  error: Gen2Error,
});
const Gen2Number = Type.Object({ number: Type.Optional(Type.String({ description: 'E.164' })) });

const gen2Common = {
  phoneNumber: Type.Optional(Gen2Number),
  customer: Type.Optional(Gen2Number),
  /** Generation 2's debugging artifact; documented on `ended-with-error`. */
  error: Gen2Error,
};

const gen2Envelope = <Message extends Type.TSchema>(message: Message, description: string) =>
  Type.Object({ message }, { description });

export const Gen2StatusUpdate = gen2Envelope(
  Type.Object({
    type: Type.Literal('status-update'),
    timestamp: IsoDateTime,
    call: Gen2Call,
    status: Type.Optional(Type.String({ description: '`in-progress`, `ended` or `ended-with-error`' })),
    end_reason: Type.Optional(Text),
    endedReason: Type.Optional(Text),
    ...gen2Common,
  }),
  'Generation 2 status-update (the status is `message.status`, or else `message.call.status`)',
);
export type Gen2StatusUpdate = Type.Static<typeof Gen2StatusUpdate>;

export const Gen2EndOfCallReport = gen2Envelope(
  Type.Object({
    type: Type.Literal('end-of-call-report'),
    timestamp: IsoDateTime,
    call: Gen2Call,
    durationSeconds: Type.Optional(Seconds),
    end_reason: Type.Optional(Type.String({ description: 'e.g. `user_hangup`, `max_duration`' })),
    endedReason: Type.Optional(Text),
    started_at: Type.Optional(IsoDateTime),
    ended_at: Type.Optional(IsoDateTime),
    ...gen2Common,
  }),
  'Generation 2 end-of-call-report; also carries summary, analysis, messages and recording_url, archived as received',
);
export type Gen2EndOfCallReport = Type.Static<typeof Gen2EndOfCallReport>;

export const Gen2ToolCalls = gen2Envelope(
  Type.Object({
    type: Type.Literal('tool-calls'),
    timestamp: IsoDateTime,
    call: Gen2Call,
    ...gen2Common,
  }),
  'Generation 2 tool-calls',
);
export type Gen2ToolCalls = Type.Static<typeof Gen2ToolCalls>;

export const Gen2AssistantRequest = gen2Envelope(
  Type.Object({
    type: Type.Literal('assistant-request'),
    timestamp: Type.Optional(IsoDateTime),
    call: Type.Optional(Gen2OptionalCall),
    ...gen2Common,
  }),
  'Generation 2 assistant-request',
);
export type Gen2AssistantRequest = Type.Static<typeof Gen2AssistantRequest>;

export const Gen2UnknownEvent = gen2Envelope(
  Type.Object({
    type: Type.String(),
    timestamp: Type.Optional(IsoDateTime),
    call: Type.Optional(Gen2OptionalCall),
    status: Type.Optional(Text),
    ...gen2Common,
  }),
  'Generation 2 event of a type calltrail does not know yet, archived as received',
);
export type Gen2UnknownEvent = Type.Static<typeof Gen2UnknownEvent>;

/** Any body the webhook accepts, for the API description. Validation dispatches on the type instead. */
export const FlireoEventBody = Type.Union(
  [
    Gen1StatusUpdate,
    Gen1EndOfCallReport,
    Gen1ToolCalls,
    Gen1AssistantRequest,
    Gen1UnknownEvent,
    Gen2StatusUpdate,
    Gen2EndOfCallReport,
    Gen2ToolCalls,
    Gen2AssistantRequest,
    Gen2UnknownEvent,
  ],
  { description: 'A Flireo server event, generation 1 (flat) or generation 2 (`message` envelope)' },
);

/** Compiled once; checking a body is then a plain function call. */
export const validators = {
  gen1: {
    'status-update': Compile(Gen1StatusUpdate),
    'end-of-call-report': Compile(Gen1EndOfCallReport),
    'tool-calls': Compile(Gen1ToolCalls),
    'assistant-request': Compile(Gen1AssistantRequest),
    unknown: Compile(Gen1UnknownEvent),
  },
  gen2: {
    'status-update': Compile(Gen2StatusUpdate),
    'end-of-call-report': Compile(Gen2EndOfCallReport),
    'tool-calls': Compile(Gen2ToolCalls),
    'assistant-request': Compile(Gen2AssistantRequest),
    unknown: Compile(Gen2UnknownEvent),
  },
};
