/**
 * Synthetic Flireo traffic for the benchmarks: calls with a realistic life (in-progress, tool calls,
 * an ending status, an end-of-call report, in either documentation generation, sometimes delivered
 * out of order), as the webhook bodies Flireo would send, and as the records ingest would archive
 * from them. Seeded, so two runs with the same options work on the same data.
 */
import { createHmac } from 'node:crypto';
import {
  archivedEventSchemaVersion,
  encodeRawBody,
  type ArchivedCallEvent,
  type ReceptionMetadata,
} from '../src/archive/archived-event.ts';
import { callStreamName } from '../src/archive/streams.ts';
import { webhookSecret } from './context.ts';
import { flireoEventId } from '../src/flireo/event-id.ts';
import { normalizeFlireoEvent } from '../src/flireo/normalize.ts';

/** mulberry32: small, fast and good enough to shape test data. */
export const seededRandom = (seed: number): (() => number) => {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
};

const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

/** A handful of assistants take all the calls, as in a real deployment. */
export const assistantNumbers: readonly string[] = Array.from(
  { length: 24 },
  (_, index) => `+4930${String(5_550_000 + index * 137).padStart(7, '0')}`,
);

const endedReasons = [
  'customer-ended-call',
  'assistant-ended-call',
  'silence-timed-out',
  'max-duration-reached',
  'customer-did-not-answer',
  'transferred, then ended',
];

const debuggingArtifacts = [
  'llm-provider-timeout after 30 s',
  'voice "primary" failed; fallback failed too',
  '=pipeline-error: tts 502',
  'transport-closed',
];

const words = (
  'hello thanks calling about appointment tomorrow morning could you please confirm the time and address ' +
  'yes of course your booking is at nine thirty anything else no that is all goodbye'
).split(' ');

const sentence = (random: () => number, length: number): string =>
  Array.from({ length }, () => pick(random, words)).join(' ');

export type CallOutcome = 'ended' | 'ended-with-debugging' | 'in-progress';

export interface SimulatedCall {
  readonly callId: string;
  readonly generation: 1 | 2;
  readonly caller: string;
  readonly assistant: string;
  readonly startMs: number;
  readonly durationSeconds: number;
  readonly outcome: CallOutcome;
  readonly toolCalls: number;
  /** The end-of-call report arrives before the ending status-update (Flireo does not order deliveries). */
  readonly reportFirst: boolean;
  readonly sendsReport: boolean;
  readonly endedReason: string;
  readonly debuggingArtifact: string;
}

/** One webhook delivery: the exact body bytes and when it reaches calltrail. */
export interface Delivery {
  readonly callId: string;
  readonly body: string;
  readonly receivedAtMs: number;
}

export const simulateCall = (random: () => number, callId: string, startMs: number): SimulatedCall => {
  const roll = random();
  return {
    callId,
    generation: random() < 0.7 ? 1 : 2,
    caller: `+49151${String(Math.floor(random() * 100_000_000)).padStart(8, '0')}`,
    assistant: pick(random, assistantNumbers),
    startMs,
    durationSeconds: 20 + Math.floor(random() * 580),
    // A few calls never end inside the data set: they stay in progress.
    outcome: roll < 0.04 ? 'in-progress' : roll < 0.14 ? 'ended-with-debugging' : 'ended',
    toolCalls: Math.floor(random() * 4),
    reportFirst: random() < 0.15,
    sendsReport: random() < 0.97,
    endedReason: pick(random, endedReasons),
    debuggingArtifact: pick(random, debuggingArtifacts),
  };
};

const iso = (ms: number): string => new Date(ms).toISOString();

const statusBody = (call: SimulatedCall, atMs: number, status: CallOutcome): string => {
  if (call.generation === 1) {
    return JSON.stringify({
      eventType: 'status-update',
      eventTimestamp: atMs,
      callSession: call.callId,
      status,
      ...(status === 'ended-with-debugging' ? { 'debugging-artifact': call.debuggingArtifact } : {}),
      ...(status === 'in-progress' ? {} : { reason: call.endedReason }),
      fromCaller: call.caller,
      toAssistant: call.assistant,
    });
  }
  const rawStatus = status === 'ended-with-debugging' ? 'ended-with-error' : status;
  return JSON.stringify({
    message: {
      type: 'status-update',
      timestamp: iso(atMs),
      call: { id: call.callId, type: 'inboundPhoneCall', status: rawStatus },
      status: rawStatus,
      ...(status === 'in-progress' ? {} : { endedReason: call.endedReason }),
      ...(status === 'ended-with-debugging' ? { error: call.debuggingArtifact } : {}),
      phoneNumber: { number: call.assistant },
      customer: { number: call.caller },
    },
  });
};

const toolCallsBody = (call: SimulatedCall, random: () => number, atMs: number): string => {
  const task = {
    name: pick(random, ['lookup_customer', 'book_appointment', 'check_availability']),
    arguments: { date: iso(atMs + 86_400_000).slice(0, 10), note: sentence(random, 6) },
  };
  return call.generation === 1
    ? JSON.stringify({
        eventType: 'tool-calls',
        eventTime: atMs,
        callId: call.callId,
        tasksInitiated: [task],
        userMetadata: { crmId: `crm-${Math.floor(random() * 1e6)}` },
        fromCaller: call.caller,
        toAssistant: call.assistant,
      })
    : JSON.stringify({
        message: {
          type: 'tool-calls',
          timestamp: iso(atMs),
          call: { id: call.callId },
          toolCallList: [{ id: `tool-${Math.floor(random() * 1e9)}`, function: task }],
          phoneNumber: { number: call.assistant },
          customer: { number: call.caller },
        },
      });
};

const reportBody = (call: SimulatedCall, random: () => number, atMs: number): string => {
  const endMs = call.startMs + call.durationSeconds * 1000;
  const transcript = sentence(random, 40 + Math.floor(random() * 160));
  const summary = sentence(random, 12 + Math.floor(random() * 20));
  return call.generation === 1
    ? JSON.stringify({
        eventType: 'end-of-call-report',
        eventTimestamp: atMs,
        callId: call.callId,
        callLengthSeconds: call.durationSeconds,
        reason: call.endedReason,
        transcriptText: transcript,
        summaryText: summary,
        recordings: { linkStereo: `https://recordings.example/${call.callId}.wav?sig=${random()}` },
        fromCaller: call.caller,
        toAssistant: call.assistant,
      })
    : JSON.stringify({
        message: {
          type: 'end-of-call-report',
          timestamp: iso(atMs),
          call: { id: call.callId },
          durationSeconds: call.durationSeconds,
          endedReason: call.endedReason,
          started_at: iso(call.startMs),
          ended_at: iso(endMs),
          summary,
          analysis: { successEvaluation: random() < 0.8 ? 'true' : 'false' },
          messages: [{ role: 'user', message: transcript }],
          recording_url: `https://recordings.example/${call.callId}.wav`,
          phoneNumber: { number: call.assistant },
          customer: { number: call.caller },
        },
      });
};

/** The call's deliveries in arrival order; event times are the bodies' own, arrival a little later. */
export const deliveriesOf = (call: SimulatedCall, random: () => number): Delivery[] => {
  const latency = () => 40 + Math.floor(random() * 400);
  const endMs = call.startMs + call.durationSeconds * 1000;
  const deliveries: Delivery[] = [];
  const add = (eventMs: number, body: string, arrivalMs = eventMs + latency()) =>
    deliveries.push({ callId: call.callId, body, receivedAtMs: arrivalMs });
  add(call.startMs + 200, statusBody(call, call.startMs + 200, 'in-progress'));
  for (let tool = 0; tool < call.toolCalls; tool += 1) {
    const atMs = call.startMs + Math.floor(((tool + 1) / (call.toolCalls + 1)) * call.durationSeconds * 1000);
    add(atMs, toolCallsBody(call, random, atMs));
  }
  if (call.outcome !== 'in-progress') {
    const endArrival = endMs + latency();
    const reportMs = endMs + 1000 + Math.floor(random() * 4000);
    add(endMs, statusBody(call, endMs, call.outcome), call.reportFirst ? reportMs + 900 : endArrival);
    if (call.sendsReport) add(reportMs, reportBody(call, random, reportMs), reportMs + latency());
  }
  return deliveries.sort((a, b) => a.receivedAtMs - b.receivedAtMs);
};

/** Only the call's status-updates (its start and, unless it is still going, its end), in order. */
export const statusUpdatesOf = (call: SimulatedCall): string[] => [
  statusBody(call, call.startMs + 200, 'in-progress'),
  ...(call.outcome === 'in-progress'
    ? []
    : [statusBody(call, call.startMs + call.durationSeconds * 1000, call.outcome)]),
];

export interface ArchivedRecord {
  readonly streamName: string;
  readonly eventId: string;
  readonly eventType: string;
  readonly data: ArchivedCallEvent;
  readonly metadata: ReceptionMetadata;
}

/**
 * What the webhook archives for a delivery, computed by the same functions it uses (normalization,
 * content-derived id, raw body encoding), in the same shape and key order.
 */
export const archivedRecordOf = (delivery: Delivery, requestId: string): ArchivedRecord => {
  const parsed: unknown = JSON.parse(delivery.body);
  const normalization = normalizeFlireoEvent(parsed);
  if (!normalization.ok) {
    throw new Error(`generated an invalid Flireo event: ${JSON.stringify(normalization.problems)}`);
  }
  const event = normalization.event;
  if (event.callId === null) throw new Error('generated a call event without a call id');
  return {
    streamName: callStreamName(event.callId),
    eventId: flireoEventId(parsed),
    eventType: event.eventType,
    data: {
      schemaVersion: archivedEventSchemaVersion,
      ...event,
      ...encodeRawBody(Buffer.from(delivery.body, 'utf8')),
    },
    metadata: {
      receivedAt: iso(delivery.receivedAtMs),
      requestId,
      sourceAddress: '203.0.113.10',
      signatureVerified: true,
      authentication: 'signature',
      userAgent: 'flireo-webhooks/2.4',
      contentType: 'application/json',
      provenance: {
        signature: signedHeaders(webhookSecret, delivery.body, delivery.receivedAtMs)['x-webhook-signature']!,
        timestamp: String(Math.floor(delivery.receivedAtMs / 1000)),
        event: null,
        tokenName: null,
      },
    },
  };
};

/** Flireo's signature headers: hex HMAC-SHA256 over `<timestamp>.<raw body>`. */
export const signedHeaders = (secret: string, body: string, nowMs: number): Record<string, string> => {
  const timestamp = String(Math.floor(nowMs / 1000));
  return {
    'content-type': 'application/json',
    'user-agent': 'flireo-webhooks/2.4',
    'x-webhook-timestamp': timestamp,
    'x-webhook-signature': createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex'),
  };
};

/**
 * Deliveries in global arrival order for calls starting one after another across `spanMs`, as a
 * lazy sequence: calls overlap in time, so their deliveries interleave as they would at the webhook.
 */
export function* trafficTimeline(options: {
  readonly seed: number;
  readonly startMs: number;
  readonly spanMs: number;
  readonly expectedCalls: number;
  readonly callIdPrefix: string;
}): Generator<Delivery> {
  const random = seededRandom(options.seed);
  const meanGapMs = options.spanMs / Math.max(1, options.expectedCalls);
  // A min-heap on arrival time: a delivery is released once no later-starting call can precede it.
  const heap: Delivery[] = [];
  const push = (delivery: Delivery) => {
    heap.push(delivery);
    for (let index = heap.length - 1; index > 0;) {
      const parent = (index - 1) >> 1;
      if (heap[parent]!.receivedAtMs <= heap[index]!.receivedAtMs) break;
      [heap[parent], heap[index]] = [heap[index]!, heap[parent]!];
      index = parent;
    }
  };
  const pop = (): Delivery => {
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      for (let index = 0; ;) {
        const left = 2 * index + 1;
        const right = left + 1;
        let least = index;
        if (left < heap.length && heap[left]!.receivedAtMs < heap[least]!.receivedAtMs) least = left;
        if (right < heap.length && heap[right]!.receivedAtMs < heap[least]!.receivedAtMs) least = right;
        if (least === index) break;
        [heap[least], heap[index]] = [heap[index]!, heap[least]!];
        index = least;
      }
    }
    return top;
  };
  let startMs = options.startMs;
  for (let index = 0; ; index += 1) {
    while (heap.length > 0 && heap[0]!.receivedAtMs <= startMs) yield pop();
    const call = simulateCall(
      random,
      `${options.callIdPrefix}${index.toString(36).padStart(6, '0')}`,
      startMs,
    );
    for (const delivery of deliveriesOf(call, random)) push(delivery);
    startMs += Math.max(1, Math.round(meanGapMs * 2 * random()));
  }
}
