/**
 * Relay mode: calltrail in line between Flireo and the customer's own handler for the two events that
 * need an answer (`assistant-request`, `tool-calls`). The webhook route authenticates, validates and
 * archives the request first (within the archive budget: past it the request is journaled, so a slow
 * store never delays the call, and it is answered only once durably recorded somewhere); then this
 * forwards the exact raw bytes, with Flireo's content type and `X-Webhook-*` headers (the customer's
 * own signature check keeps working) and the archive's event id, to the destination; and answers
 * Flireo with the destination's status, content type and body verbatim when they are a valid answer
 * for the event type. Otherwise, and at the deadline, the configured fallback or a problem (504 for a
 * timeout, 502 for anything else).
 *
 * Every exchange is archived as a `relay-exchange` record in the request's stream, after the request
 * (the durable archive keeps a stream's appends in order), linked to it by the request's event id.
 * It is appended as the answer goes out, not before: the call must not wait for a second write; with
 * `recordBeforeAnswer`, the answer waits for it, so that a crash cannot lose an answered exchange.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { FastifyBaseLogger, FastifyReply } from 'fastify';
import type { Registry } from 'prom-client';
import { encodeRawBody } from '../archive/archived-event.ts';
import { HttpProblem, sendProblem } from '../http/problem.ts';
import type { DurableArchiveWriter } from '../journal/durable-archive.ts';
import { checkAnswer, fallbackAnswer, requestedToolCalls } from './answer-check.ts';
import { createDestinationClient, type DestinationAnswer, type ForwardResult } from './destination-client.ts';
import {
  destinationWithoutCredentials,
  relayExchangeSchemaVersion,
  relayExchangeType,
  type RelayExchange,
  type RelayExchangeMetadata,
  type RelayFailureKind,
  type RelayResponse,
} from './exchange.ts';
import { createRelayMetrics, type RelayMetrics } from './metrics.ts';
import { isRelayedEventType, type RelayConfig, type RelayedEventType } from './relay-config.ts';

/** The header that carries the archived request's event id to the destination (and back to Flireo). */
export const eventIdHeader = 'x-calltrail-event-id';

/** A relayed request, being archived. */
export interface RelayedRequest {
  readonly eventType: RelayedEventType;
  readonly eventId: string;
  readonly stream: string;
  readonly callId: string | null;
  /** The assistant's number, which may choose another destination. */
  readonly assistant: string | null;
  readonly rawBody: Buffer;
  readonly parsed: unknown;
  readonly contentType: string | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly requestId: string;
  /** `performance.now()` when the request's handling began: the deadline counts from here. */
  readonly startedAt: number;
  /**
   * The request's archiving, started with the forwarding: nothing is answered before it settles, and
   * when it fails (neither the store nor the journal took the request) `answer` rejects with its error.
   */
  readonly archived: Promise<ArchivedRequest>;
}

/** Where the relayed request was durably recorded, and how long that took. */
export interface ArchivedRequest {
  readonly duplicate: boolean;
  readonly journaled: boolean;
  readonly archiveMs: number;
}

export interface Relay {
  /** Whether requests of this type are relayed. */
  relays(eventType: string): eventType is RelayedEventType;
  readonly archiveBudgetMs: number;
  answer(reply: FastifyReply, request: RelayedRequest): Promise<FastifyReply>;
  /** Waits for the exchanges being archived, then closes the connections. */
  close(): Promise<void>;
}

export interface RelayOptions {
  readonly config: RelayConfig;
  readonly archive: DurableArchiveWriter;
  readonly metricsRegistry: Registry;
  readonly logger: FastifyBaseLogger;
  readonly clock: () => Date;
}

// One set of relay metrics per registry, however many apps share it (tests build several).
const metricsByRegistry = new WeakMap<Registry, RelayMetrics>();
const relayMetricsFor = (registry: Registry): RelayMetrics => {
  let metrics = metricsByRegistry.get(registry);
  if (metrics === undefined) {
    metrics = createRelayMetrics(registry);
    metricsByRegistry.set(registry, metrics);
  }
  return metrics;
};

/** Flireo's headers the customer's handler may check: every `X-Webhook-*` but calltrail's own token. */
const forwardedHeaders = (request: RelayedRequest): Record<string, string> => {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (!name.startsWith('x-webhook-') || name === 'x-webhook-token' || value === undefined) continue;
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  if (request.contentType !== undefined) headers['content-type'] = request.contentType;
  const userAgent = request.headers['user-agent'];
  if (typeof userAgent === 'string') headers['user-agent'] = userAgent;
  headers[eventIdHeader] = request.eventId;
  return headers;
};

type Answer =
  | { readonly with: 'destination'; readonly answer: DestinationAnswer }
  | { readonly with: 'fallback'; readonly body: Buffer }
  | { readonly with: 'problem'; readonly problem: HttpProblem };

export const createRelay = (options: RelayOptions): Relay => {
  const { config, archive, logger, clock } = options;
  const metrics = relayMetricsFor(options.metricsRegistry);
  const client = createDestinationClient({
    maxDeadlineMs: Math.max(...Object.values(config.deadlineMs)),
  });
  const archiving = new Set<Promise<void>>();

  const destinationOf = (request: RelayedRequest): URL =>
    (request.assistant === null ? undefined : config.overrides.get(request.assistant)) ?? config.url;

  const failedAnswer = (
    request: RelayedRequest,
    destination: URL,
    failure: RelayFailureKind,
    detail: string,
  ): Answer => {
    const fallback = fallbackAnswer(
      request.eventType,
      config.fallbacks,
      request.eventType === 'tool-calls' ? requestedToolCalls(request.parsed) : [],
    );
    if (fallback !== undefined) return { with: 'fallback', body: Buffer.from(JSON.stringify(fallback)) };
    const timedOut = failure === 'timeout';
    return {
      with: 'problem',
      problem: new HttpProblem(
        timedOut ? 504 : 502,
        timedOut ? 'Gateway Timeout' : 'Bad Gateway',
        `the relay destination ${destination.host} failed (${failure}): ${detail}`,
      ),
    };
  };

  const decide = (request: RelayedRequest, result: ForwardResult) => {
    if (!result.ok) {
      return { failure: result.failure, detail: result.detail, answer: result.answer };
    }
    const { answer } = result;
    if (answer.status < 200 || answer.status > 299) {
      return { failure: 'non-2xx' as const, detail: `the destination answered ${answer.status}`, answer };
    }
    const check = checkAnswer(
      request.eventType,
      { contentType: answer.contentType, body: answer.body },
      request.eventType === 'tool-calls' ? requestedToolCalls(request.parsed) : [],
    );
    if (!check.ok) return { failure: 'invalid-body' as const, detail: check.detail, answer };
    return { failure: null, detail: null, answer };
  };

  const responseRecord = (answer: DestinationAnswer | undefined): RelayResponse | null => {
    if (answer === undefined) return null;
    const whole = !answer.truncated && answer.bytes <= config.archivedResponseBytes;
    return {
      status: answer.status,
      contentType: answer.contentType?.slice(0, 512) ?? null,
      bytes: answer.bytes,
      sha256: answer.sha256,
      bodyOmitted: !whole,
      ...(whole ? { body: encodeRawBody(answer.body) } : {}),
    };
  };

  const archiveExchange = (request: RelayedRequest, exchange: RelayExchange) => {
    const metadata: RelayExchangeMetadata = {
      recordedAt: clock().toISOString(),
      requestId: request.requestId,
    };
    const pending = archive
      // Within the archive budget too: the call's next relayed request queues behind this append.
      .append(
        request.stream,
        { id: randomUUID(), type: relayExchangeType, data: exchange, metadata },
        { timeoutMs: config.archiveBudgetMs },
      )
      .then(
        () => {},
        (error: unknown) => {
          // Answered already; the request itself is archived. Say what is missing.
          logger.error(
            { err: error, stream: request.stream, requestEventId: request.eventId },
            'relay exchange not archived',
          );
        },
      )
      .finally(() => archiving.delete(pending));
    archiving.add(pending);
    return pending;
  };

  const answer = async (reply: FastifyReply, request: RelayedRequest): Promise<FastifyReply> => {
    const destination = destinationOf(request);
    const deadlineMs = Math.floor(
      config.deadlineMs[request.eventType] - (performance.now() - request.startedAt),
    );
    const startedAt = clock();
    const forwardStart = performance.now();
    // Cut short when the request cannot be kept: Flireo is then told to retry, not answered.
    const abandon = new AbortController();
    const forwarding: Promise<{ result: ForwardResult; latencyMs: number }> = (
      deadlineMs <= 0
        ? Promise.resolve<ForwardResult>({
            ok: false,
            failure: 'timeout',
            detail: 'the deadline passed before forwarding',
          })
        : client.forward({
            url: destination,
            body: request.rawBody,
            headers: forwardedHeaders(request),
            deadlineMs,
            maxResponseBytes: config.maxResponseBytes,
            signal: abandon.signal,
          })
    ).then((result) => ({ result, latencyMs: performance.now() - forwardStart }));
    let archived: ArchivedRequest;
    try {
      archived = await request.archived;
    } catch (error) {
      abandon.abort();
      await forwarding;
      throw error;
    }
    const { result, latencyMs } = await forwarding;
    const outcome = decide(request, result);
    const chosen: Answer =
      outcome.failure === null
        ? { with: 'destination', answer: outcome.answer }
        : failedAnswer(request, destination, outcome.failure, outcome.detail);

    const labels = { destination: destination.host, event_type: request.eventType };
    metrics.requests.inc({ ...labels, outcome: outcome.failure ?? 'answered' });
    metrics.latencySeconds.observe(labels, latencyMs / 1000);
    if (chosen.with === 'fallback') metrics.fallbacks.inc(labels);
    if (outcome.failure !== null) {
      reply.request.log.warn(
        { relay: { destination: destination.host, failure: outcome.failure, detail: outcome.detail } },
        'relay destination failed',
      );
    }

    reply.header(eventIdHeader, request.eventId);
    const answerStatus =
      chosen.with === 'destination'
        ? chosen.answer.status
        : chosen.with === 'fallback'
          ? 200
          : chosen.problem.status;
    const recording = archiveExchange(request, {
      schemaVersion: relayExchangeSchemaVersion,
      requestEventId: request.eventId,
      requestType: request.eventType,
      callId: request.callId,
      destination: destinationWithoutCredentials(destination),
      startedAt: startedAt.toISOString(),
      latencyMs: Math.round(latencyMs * 1000) / 1000,
      archiveMs: Math.round(archived.archiveMs * 1000) / 1000,
      requestJournaled: archived.journaled,
      outcome: outcome.failure === null ? 'answered' : 'failed',
      failure: outcome.failure,
      failureDetail: outcome.detail,
      response: responseRecord(outcome.answer),
      answeredWith: chosen.with,
      answerStatus,
    });
    // Bounded: the record's append has the archive budget, then the journal's own write.
    if (config.recordBeforeAnswer) await recording;
    switch (chosen.with) {
      case 'destination': {
        const { answer: verbatim } = chosen;
        if (verbatim.contentType !== null) reply.header('content-type', verbatim.contentType);
        return reply.code(verbatim.status).send(verbatim.body);
      }
      case 'fallback':
        return reply.code(200).header('content-type', 'application/json').send(chosen.body);
      case 'problem':
        return sendProblem(reply, chosen.problem);
      default: {
        const never: never = chosen;
        return never;
      }
    }
  };

  return {
    relays: isRelayedEventType,
    archiveBudgetMs: config.archiveBudgetMs,
    answer,
    close: async () => {
      await Promise.all([...archiving]);
      await client.close();
    },
  };
};
