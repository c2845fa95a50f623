/**
 * Flireo server event examples, each with the normalization calltrail must produce. The three
 * status-update payloads are Flireo's own documented examples, verbatim; the others are realistic
 * full examples of every generation 1 and generation 2 event type, built from the documented fields.
 */
import type { NormalizedCallEvent } from '../../src/flireo/normalize.ts';

export interface FlireoExample {
  readonly name: string;
  /** The body exactly as Flireo sends it (pretty-printed, as in its documentation). */
  readonly raw: string;
  readonly normalized: NormalizedCallEvent;
}

const none = {
  callId: null,
  eventTime: null,
  status: null,
  rawStatus: null,
  fromCaller: null,
  toAssistant: null,
  debuggingArtifact: null,
  endedReason: null,
  durationSeconds: null,
  startedAt: null,
  endedAt: null,
} as const;

export const callSession = 'd0132d99-a7a4-4826-ad7b-72fee9f6f61f';

// Flireo's documented status-update examples, byte for byte as published.

export const seedInProgress: FlireoExample = {
  name: 'seed: call in progress',
  raw: `{
  "eventTimestamp": 1756368117035,
  "eventType": "status-update",
  "callSession": "d0132d99-a7a4-4826-ad7b-72fee9f6f61f",
  "fromCaller": "+31612345678",
  "toAssistant": "+31850123456",
  "status": "in-progress"
}`,
  normalized: {
    ...none,
    eventType: 'status-update',
    rawEventType: 'status-update',
    payloadGeneration: 1,
    callId: callSession,
    eventTime: '2025-08-28T08:01:57.035Z',
    status: 'in-progress',
    rawStatus: 'in-progress',
    fromCaller: '+31612345678',
    toAssistant: '+31850123456',
  },
};

export const seedEnded: FlireoExample = {
  name: 'seed: call ended',
  raw: `{
  "eventTimestamp": 1756368117035,
  "eventType": "status-update",
  "callSession": "d0132d99-a7a4-4826-ad7b-72fee9f6f61f",
  "fromCaller": "+31612345678",
  "toAssistant": "+31850123456",
  "status": "ended"
}`,
  normalized: { ...seedInProgress.normalized, status: 'ended', rawStatus: 'ended' },
};

export const seedEndedWithDebugging: FlireoExample = {
  name: 'seed: call ended with debugging info',
  raw: `{
  "eventTimestamp": 1756368117035,
  "eventType": "status-update",
  "callSession": "d0132d99-a7a4-4826-ad7b-72fee9f6f61f",
  "fromCaller": "+31612345678",
  "toAssistant": "+31850123456",
  "status": "ended-with-debugging",
  "debugging-artifact": "Couldn't Get Assistant. Assistant Request Did Not Return One."
}`,
  normalized: {
    ...seedInProgress.normalized,
    status: 'ended-with-debugging',
    rawStatus: 'ended-with-debugging',
    debuggingArtifact: "Couldn't Get Assistant. Assistant Request Did Not Return One.",
  },
};

// Generation 1, the other types.

export const gen1EndedWithReason: FlireoExample = {
  name: 'generation 1 status-update: ended, with the reason the dashboard shows',
  raw: JSON.stringify({
    eventTimestamp: 1756368301412,
    eventType: 'status-update',
    callSession,
    fromCaller: '+31612345678',
    toAssistant: '+31850123456',
    status: 'ended',
    reason: 'customer-ended-call',
  }),
  normalized: {
    ...seedInProgress.normalized,
    eventTime: '2025-08-28T08:05:01.412Z',
    status: 'ended',
    rawStatus: 'ended',
    endedReason: 'customer-ended-call',
  },
};

export const gen1EndOfCallReport: FlireoExample = {
  name: 'generation 1 end-of-call-report',
  raw: JSON.stringify(
    {
      eventTimestamp: 1756368305120,
      eventType: 'end-of-call-report',
      callId: callSession,
      fromCaller: '+31612345678',
      toAssistant: '+31850123456',
      transcriptText:
        'AI: Goedemiddag, u spreekt met de assistent van Bakkerij Jansen.\nUser: Ik wil graag een taart bestellen voor zaterdag.',
      summaryText: 'The caller ordered a cake for Saturday pick-up.',
      recordings: {
        linkStereo:
          'https://recordings.flireo.example/d0132d99/stereo.wav?X-Signature=3f9a1c0b7e&Expires=1756454705',
      },
      callLengthSeconds: 184.6,
    },
    null,
    2,
  ),
  normalized: {
    ...none,
    eventType: 'end-of-call-report',
    rawEventType: 'end-of-call-report',
    payloadGeneration: 1,
    callId: callSession,
    eventTime: '2025-08-28T08:05:05.120Z',
    fromCaller: '+31612345678',
    toAssistant: '+31850123456',
    durationSeconds: 184.6,
  },
};

export const gen1ToolCallsEpoch: FlireoExample = {
  name: 'generation 1 tool-calls, eventTime in epoch milliseconds',
  raw: JSON.stringify({
    eventTime: 1756368190007,
    eventType: 'tool-calls',
    callId: callSession,
    tasksInitiated: [
      {
        taskId: 'task_8f2c1d',
        taskName: 'check_availability',
        taskPayload: { date: '2025-08-30', product: 'slagroomtaart' },
      },
    ],
    userMetadata: { customerNumber: 'C-10442' },
  }),
  normalized: {
    ...none,
    eventType: 'tool-calls',
    rawEventType: 'tool-calls',
    payloadGeneration: 1,
    callId: callSession,
    eventTime: '2025-08-28T08:03:10.007Z',
  },
};

export const gen1ToolCallsIso: FlireoExample = {
  name: 'generation 1 tool-calls, eventTime as ISO 8601 with an offset',
  raw: JSON.stringify({
    eventTime: '2025-08-28T10:03:11.5+02:00',
    eventType: 'tool-calls',
    callId: callSession,
    tasksInitiated: [{ taskId: 'task_8f2c1e', taskName: 'place_order', taskPayload: { quantity: 1 } }],
    userMetadata: {},
  }),
  normalized: { ...gen1ToolCallsEpoch.normalized, eventTime: '2025-08-28T08:03:11.500Z' },
};

export const gen1AssistantRequest: FlireoExample = {
  name: 'generation 1 assistant-request',
  raw: JSON.stringify({
    eventType: 'assistant-request',
    fromCaller: '+31612345678',
    toAssistant: '+31850123456',
  }),
  normalized: {
    ...none,
    eventType: 'assistant-request',
    rawEventType: 'assistant-request',
    payloadGeneration: 1,
    fromCaller: '+31612345678',
    toAssistant: '+31850123456',
  },
};

export const gen1Unknown: FlireoExample = {
  name: 'generation 1 event of an unknown type, with a call id',
  raw: JSON.stringify({
    eventTimestamp: 1756368200000,
    eventType: 'transfer-destination-request',
    callSession,
    destination: { number: '+31201234567' },
  }),
  normalized: {
    ...none,
    eventType: 'unknown',
    rawEventType: 'transfer-destination-request',
    payloadGeneration: 1,
    callId: callSession,
    eventTime: '2025-08-28T08:03:20.000Z',
  },
};

export const gen1UnrecognizedStatus: FlireoExample = {
  name: 'generation 1 status-update with a status outside the vocabulary',
  raw: JSON.stringify({
    eventTimestamp: 1756368110000,
    eventType: 'status-update',
    callSession,
    fromCaller: '+31612345678',
    toAssistant: '+31850123456',
    status: 'ringing',
  }),
  normalized: {
    ...seedInProgress.normalized,
    eventTime: '2025-08-28T08:01:50.000Z',
    status: null,
    rawStatus: 'ringing',
  },
};

// Generation 2: envelopes.

export const gen2CallId = '7c9e6679-7425-40de-944b-e07fc1f90ae7';

const gen2Parties = {
  phoneNumber: { id: 'pn_01J6Z', number: '+31850123456', name: 'Bakkerij Jansen' },
  customer: { number: '+31612345678', name: 'J. de Vries' },
};
const gen2Normalized = {
  ...none,
  payloadGeneration: 2,
  callId: gen2CallId,
  fromCaller: '+31612345678',
  toAssistant: '+31850123456',
} as const;

export const gen2InProgress: FlireoExample = {
  name: 'generation 2 status-update: in-progress',
  raw: JSON.stringify(
    {
      message: {
        type: 'status-update',
        timestamp: '2025-08-28T08:01:57.035Z',
        call: { id: gen2CallId, type: 'inboundPhoneCall', status: 'in-progress' },
        status: 'in-progress',
        ...gen2Parties,
      },
    },
    null,
    2,
  ),
  normalized: {
    ...gen2Normalized,
    eventType: 'status-update',
    rawEventType: 'status-update',
    eventTime: '2025-08-28T08:01:57.035Z',
    status: 'in-progress',
    rawStatus: 'in-progress',
  },
};

export const gen2EndedWithError: FlireoExample = {
  name: 'generation 2 status-update: ended-with-error (status on the call only)',
  raw: JSON.stringify({
    message: {
      type: 'status-update',
      timestamp: '2025-08-28T08:02:03Z',
      call: { id: gen2CallId, type: 'inboundPhoneCall', status: 'ended-with-error' },
      error: 'assistant-request-returned-error: upstream answered 502',
      endedReason: 'assistant-request-failed',
      ...gen2Parties,
    },
  }),
  normalized: {
    ...gen2Normalized,
    eventType: 'status-update',
    rawEventType: 'status-update',
    eventTime: '2025-08-28T08:02:03.000Z',
    status: 'ended-with-debugging',
    rawStatus: 'ended-with-error',
    debuggingArtifact: 'assistant-request-returned-error: upstream answered 502',
    endedReason: 'assistant-request-failed',
  },
};

export const gen2EndOfCallReport: FlireoExample = {
  name: 'generation 2 end-of-call-report',
  raw: JSON.stringify({
    message: {
      type: 'end-of-call-report',
      timestamp: '2025-08-28T08:05:06.250Z',
      call: { id: gen2CallId, type: 'inboundPhoneCall', status: 'ended' },
      ...gen2Parties,
      durationSeconds: 186,
      summary: 'The caller ordered a cake for Saturday pick-up.',
      analysis: { successEvaluation: 'true', structuredData: { product: 'slagroomtaart' } },
      end_reason: 'user_hangup',
      started_at: '2025-08-28T10:02:00+02:00',
      ended_at: '2025-08-28T08:05:06.000Z',
      messages: [
        { role: 'assistant', message: 'Goedemiddag, u spreekt met de assistent van Bakkerij Jansen.' },
        { role: 'user', message: 'Ik wil graag een taart bestellen.' },
      ],
      recording_url:
        'https://recordings.flireo.example/7c9e6679/mono.wav?X-Signature=91be0f&Expires=1756454706',
    },
  }),
  normalized: {
    ...gen2Normalized,
    eventType: 'end-of-call-report',
    rawEventType: 'end-of-call-report',
    eventTime: '2025-08-28T08:05:06.250Z',
    endedReason: 'user_hangup',
    durationSeconds: 186,
    startedAt: '2025-08-28T08:02:00.000Z',
    endedAt: '2025-08-28T08:05:06.000Z',
  },
};

export const gen2ToolCalls: FlireoExample = {
  name: 'generation 2 tool-calls',
  raw: JSON.stringify({
    message: {
      type: 'tool-calls',
      timestamp: '2025-08-28T08:03:10.007Z',
      call: { id: gen2CallId, type: 'inboundPhoneCall', status: 'in-progress' },
      ...gen2Parties,
      toolCalls: [
        {
          id: 'call_Zx81',
          type: 'function',
          function: { name: 'check_availability', arguments: { date: '2025-08-30' } },
        },
      ],
    },
  }),
  normalized: {
    ...gen2Normalized,
    eventType: 'tool-calls',
    rawEventType: 'tool-calls',
    eventTime: '2025-08-28T08:03:10.007Z',
  },
};

export const gen2AssistantRequest: FlireoExample = {
  name: 'generation 2 assistant-request',
  raw: JSON.stringify({
    message: {
      type: 'assistant-request',
      timestamp: '2025-08-28T08:01:56.100Z',
      call: { id: gen2CallId, type: 'inboundPhoneCall', status: 'ringing' },
      ...gen2Parties,
    },
  }),
  normalized: {
    ...gen2Normalized,
    eventType: 'assistant-request',
    rawEventType: 'assistant-request',
    eventTime: '2025-08-28T08:01:56.100Z',
  },
};

export const gen2Unknown: FlireoExample = {
  name: 'generation 2 event of an unknown type',
  raw: JSON.stringify({
    message: {
      type: 'speech-update',
      timestamp: '2025-08-28T08:02:30.000Z',
      call: { id: gen2CallId },
      role: 'assistant',
      status: 'started',
    },
  }),
  normalized: {
    ...none,
    eventType: 'unknown',
    rawEventType: 'speech-update',
    payloadGeneration: 2,
    callId: gen2CallId,
    eventTime: '2025-08-28T08:02:30.000Z',
    rawStatus: 'started',
  },
};

export const seedExamples = [seedInProgress, seedEnded, seedEndedWithDebugging];

export const allExamples: readonly FlireoExample[] = [
  ...seedExamples,
  gen1EndedWithReason,
  gen1EndOfCallReport,
  gen1ToolCallsEpoch,
  gen1ToolCallsIso,
  gen1AssistantRequest,
  gen1Unknown,
  gen1UnrecognizedStatus,
  gen2InProgress,
  gen2EndedWithError,
  gen2EndOfCallReport,
  gen2ToolCalls,
  gen2AssistantRequest,
  gen2Unknown,
];
