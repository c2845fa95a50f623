/**
 * `POST /webhooks/flireo` (and `/webhooks/flireo/<token>`): where a Flireo server event enters
 * calltrail. In order: authenticate over the raw bytes, parse, validate and normalize, then append
 * exactly once to the call's stream. An authenticated request that cannot be accepted is evidence
 * Flireo may never send again, so it is quarantined before the 4xx; nothing unauthenticated is stored.
 * A 2xx means the event is durably stored: in the event store, or (while the store is away) in the
 * outage journal, which drains into the store once it is back.
 */
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { TypeBoxValidatorCompiler, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest, FastifySchemaCompiler } from 'fastify';
import Type, { type TSchema } from 'typebox';
import type { AppDependencies } from '../app.ts';
import {
  archivedEventSchemaVersion,
  encodeRawBody,
  maxRecordBytes,
  quarantinedRequestType,
  type ArchivedCallEvent,
  type Problem,
  type QuarantineReason,
  type QuarantinedRequest,
  type ReceptionMetadata,
} from '../archive/archived-event.ts';
import { assistantRequestStreamName, callStreamName, quarantineStreamName } from '../archive/streams.ts';
import { flireoEventId, quarantinedRequestId } from '../flireo/event-id.ts';
import { normalizeFlireoEvent } from '../flireo/normalize.ts';
import { FlireoEventBody } from '../flireo/schemas.ts';
import {
  HttpProblem,
  ProblemDetails,
  badRequest,
  sendProblem,
  serviceUnavailable,
  unauthorized,
} from '../http/problem.ts';
import { authenticateDelivery, type Authenticated } from './authentication.ts';
import { storeOnly } from '../journal/durable-archive.ts';
import { JournalFullError } from '../journal/journal.ts';
import { provenanceOf } from './provenance.ts';
import { createRelay } from '../relay/relay.ts';
import { createArchiveWriter, isRetryableAppendFailure } from './ingest.ts';
import {
  checkJsonMediaType,
  emptyBody,
  isReceivedBody,
  parseJsonBody,
  readRequestBody,
  truncateBody,
  type ReceivedBody,
} from './request-body.ts';

/** How much of an oversized body the quarantine record keeps. */
const oversizedPrefixBytes = 4096;
const maxUserAgentLength = 512;

const retryAfterSeconds = 5;

/**
 * An event too large to archive whole (over `maxRecordBytes` once encoded) gets a 413 and a truncated
 * quarantine record rather than a store error. A body can grow up to six times when stored as a JSON
 * string; below `alwaysFitsBytes` even that fits, so only larger bodies pay for measuring.
 */
const alwaysFitsBytes = 64 * 1024;
const fitsInOneRecord = (rawBody: Buffer, record: unknown): boolean =>
  rawBody.length <= alwaysFitsBytes || Buffer.byteLength(JSON.stringify(record)) <= maxRecordBytes;

const tooLargeProblem = (problems: readonly Problem[]): HttpProblem =>
  new HttpProblem(
    413,
    'Content Too Large',
    problems.map((p) => `${p.field} ${p.message}`).join('; '),
    problems,
  );

const Accepted = Type.Object(
  {
    eventId: Type.String({
      format: 'uuid',
      description: "calltrail's id for the event, derived from its content",
    }),
    stream: Type.String({ description: 'The stream that holds it' }),
    duplicate: Type.Boolean({ description: 'True when it was already archived: nothing was written' }),
    journaled: Type.Optional(
      Type.Literal(true, {
        description:
          'Present when the event store was unavailable: the event is kept in the outage journal and ' +
          'stored as soon as the store is back',
      }),
    ),
  },
  { description: 'Archived (or already archived)' },
);

const problem = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: ProblemDetails } },
});

const responses = {
  202: Accepted,
  400: problem(
    'Malformed JSON or an invalid event; `errors` names each field. Quarantined when authenticated.',
  ),
  401: problem('Missing or invalid signature or token. Nothing is stored.'),
  413: problem(
    'Body over the size limit, or too large to archive as one record. A record of it (first bytes, ' +
      'size, SHA-256) is quarantined when authenticated (a body cut short cannot prove its signature).',
  ),
  415: problem('Not application/json. Quarantined when authenticated.'),
  503: problem(
    'The event store is unavailable and the outage journal cannot take the event: it is NOT stored; ' +
      'retry after `Retry-After` seconds.',
  ),
  502: problem(
    "Relay mode: the customer's handler failed (refused, closed, non-2xx, an invalid or too large " +
      'answer) and no fallback is configured. The request is archived. Relayed requests otherwise get ' +
      "the handler's answer verbatim.",
  ),
  504: problem(
    "Relay mode: the customer's handler did not answer within the deadline. The request is archived.",
  ),
};

const TokenParams = Type.Object({
  token: Type.String({ description: 'The webhook token, for senders that can only be given a URL' }),
});

/**
 * The body is authenticated and validated by the handler itself, over the raw bytes, so that an
 * unauthenticated request is refused before anything parses it; the body schema only describes it.
 */
const validatorCompiler: FastifySchemaCompiler<TSchema> = (route) =>
  route.httpPart === 'body' ? () => true : TypeBoxValidatorCompiler(route);

/**
 * The Content-Type as the sender gave it. Fastify refuses a header it cannot parse (an empty one, say)
 * with its own 415 before any route runs, so an authenticated sender's refusal would leave no record;
 * the webhook routes therefore take the header aside on arrival, read every body as bytes, and check
 * the type themselves after authentication.
 */
const declaredContentTypes = new WeakMap<IncomingMessage, string>();
const declaredContentType = (request: FastifyRequest): string | undefined =>
  declaredContentTypes.get(request.raw);

const description =
  'Receives a Flireo server event (status-update, end-of-call-report, tool-calls, assistant-request, ' +
  'either documentation generation) and archives it exactly once. Authenticate with the signature ' +
  'headers (X-Webhook-Timestamp, X-Webhook-Signature) or the webhook token.';

export const webhookRoutes: FastifyPluginAsyncTypebox<AppDependencies> = async (app, dependencies) => {
  const { config, eventStore, metrics, clock } = dependencies;
  const archive =
    dependencies.archive?.writer ??
    storeOnly(
      createArchiveWriter(eventStore, {
        timeoutMs: config.appendTimeoutMs,
        rememberedIds: config.webhook.rememberedEventIds,
      }),
    );
  // Relay mode: assistant-request and tool-calls are answered through the customer's handler.
  const relay =
    config.relay === undefined
      ? undefined
      : createRelay({
          config: config.relay,
          archive,
          metricsRegistry: metrics.registry,
          logger: app.log,
          clock,
        });
  if (relay !== undefined) app.addHook('onClose', () => relay.close());
  /** Neither the store nor the journal took it: the sender must try again. */
  const isNotKept = (error: unknown): boolean =>
    isRetryableAppendFailure(error) || error instanceof JournalFullError;

  app.addHook('onRequest', async (request) => {
    const contentType = request.raw.headers['content-type'];
    if (contentType === undefined) return;
    declaredContentTypes.set(request.raw, contentType);
    delete request.raw.headers['content-type'];
  });

  // Every content type arrives as raw bytes: a signature covers the bytes, the archive keeps them,
  // and a wrong type from an authenticated sender is still quarantined (so it must be read).
  app.removeAllContentTypeParsers();
  // Bodies are read before the sender is known, so how many are read at once, and for how long, is
  // bounded: past the bound a request is refused at once rather than holding memory and a socket.
  let bodiesBeingRead = 0;
  app.addContentTypeParser('*', async (request: FastifyRequest, payload: IncomingMessage) => {
    if (bodiesBeingRead >= config.webhook.maxConcurrentBodies) {
      metrics.webhooks.inc({ outcome: 'unavailable' });
      throw new HttpProblem(
        503,
        'Service Unavailable',
        'too many requests are being received at once; retry later',
        undefined,
        { 'retry-after': String(retryAfterSeconds), connection: 'close' },
      );
    }
    bodiesBeingRead += 1;
    try {
      return await readRequestBody(payload, request.headers, {
        bodyLimitBytes: config.webhook.bodyLimitBytes,
        prefixBytes: oversizedPrefixBytes,
        timeoutMs: config.webhook.bodyTimeoutMs,
      });
    } finally {
      bodiesBeingRead -= 1;
    }
  });

  const receptionOf = (request: FastifyRequest, authentication: Authenticated, receivedAt: Date) =>
    ({
      receivedAt: receivedAt.toISOString(),
      requestId: request.id,
      sourceAddress: request.ip,
      signatureVerified: authentication.signatureVerified,
      authentication: authentication.method,
      userAgent: request.headers['user-agent']?.slice(0, maxUserAgentLength) ?? null,
      contentType: declaredContentType(request)?.slice(0, maxUserAgentLength) ?? null,
      provenance: provenanceOf(request.headers, authentication),
    }) satisfies ReceptionMetadata;

  const unavailable = (reply: FastifyReply, error: unknown): FastifyReply => {
    metrics.webhooks.inc({ outcome: 'unavailable' });
    reply.request.log.error({ err: error }, 'webhook request not stored: event store unavailable');
    return sendProblem(
      reply,
      serviceUnavailable(
        error instanceof JournalFullError
          ? 'the event store is unavailable and the outage journal is full; the event was not stored'
          : 'the event store is unavailable; the event was not stored',
        retryAfterSeconds,
      ),
    );
  };

  /** Keeps an authenticated request that is not accepted, then answers with its 4xx. */
  const quarantine = async (
    reply: FastifyReply,
    refusal: HttpProblem,
    record: {
      readonly reason: QuarantineReason;
      readonly problems: readonly Problem[];
      readonly body: ReceivedBody;
      readonly reception: ReceptionMetadata;
      readonly receivedAt: Date;
    },
  ): Promise<FastifyReply> => {
    const contentType = declaredContentType(reply.request) ?? null;
    const recordOf = (body: ReceivedBody): QuarantinedRequest =>
      body.kind === 'complete'
        ? {
            schemaVersion: archivedEventSchemaVersion,
            reason: record.reason,
            problems: [...record.problems],
            contentType,
            ...encodeRawBody(body.bytes),
          }
        : {
            schemaVersion: archivedEventSchemaVersion,
            reason: record.reason,
            problems: [...record.problems],
            contentType,
            ...encodeRawBody(body.prefix),
            bodyTruncated: true,
            receivedBytes: body.receivedBytes,
            declaredBytes: body.declaredBytes,
            receivedSha256: body.receivedSha256,
          };
    let body = record.body;
    let data = recordOf(body);
    if (body.kind === 'complete' && !fitsInOneRecord(body.bytes, data)) {
      body = truncateBody(body.bytes, reply.request.headers, oversizedPrefixBytes);
      data = recordOf(body);
    }
    const id = quarantinedRequestId({
      reason: record.reason,
      contentType,
      bytes:
        body.kind === 'complete'
          ? body.bytes
          : Buffer.from(`${body.receivedSha256}/${body.receivedBytes}/${body.declaredBytes ?? ''}`),
    });
    const stream = quarantineStreamName(record.receivedAt);
    try {
      await archive.append(stream, { id, type: quarantinedRequestType, data, metadata: record.reception });
    } catch (error) {
      // Evidence must not be dropped silently: the sender learns it was not kept.
      if (isNotKept(error)) return unavailable(reply, error);
      throw error;
    }
    metrics.webhooks.inc({ outcome: 'quarantined' });
    reply.request.log.warn(
      { quarantine: { reason: record.reason, problems: record.problems, id, stream } },
      'webhook request quarantined',
    );
    return sendProblem(reply, refusal);
  };

  const overLimit = [
    { field: 'body', message: `exceeds the limit of ${config.webhook.bodyLimitBytes} bytes` },
  ];

  const receive = async (
    request: FastifyRequest,
    reply: FastifyReply,
    pathToken: string | undefined,
  ): Promise<FastifyReply> => {
    const receivedAt = clock();
    const startedAt = performance.now();
    let archiveSeconds = 0;
    const body = request.body === undefined ? emptyBody : request.body;
    if (!isReceivedBody(body)) throw new Error('webhook body was not read by the raw body parser');
    if (body.kind === 'too-large') reply.header('connection', 'close');

    const authentication = authenticateDelivery(config.webhook, {
      headers: request.headers,
      pathToken,
      rawBody: body.kind === 'complete' ? body.bytes : undefined,
      now: receivedAt,
    });
    if (!authentication.ok) {
      request.log.warn({ reason: authentication.reason }, 'webhook request refused: not authenticated');
      if (body.kind === 'too-large') {
        // Unverifiable (a signature covers the whole body), but the size is the sender's real problem.
        metrics.webhooks.inc({ outcome: 'rejected' });
        return sendProblem(reply, tooLargeProblem(overLimit));
      }
      metrics.webhooks.inc({ outcome: 'unauthorized' });
      return sendProblem(reply, unauthorized(authentication.reason));
    }
    const reception = receptionOf(request, authentication, receivedAt);
    const record = { body, reception, receivedAt };

    if (body.kind === 'too-large') {
      return quarantine(reply, tooLargeProblem(overLimit), {
        ...record,
        reason: 'body-too-large',
        problems: overLimit,
      });
    }
    const mediaType = checkJsonMediaType(declaredContentType(request));
    if (!mediaType.ok) {
      const problems = [{ field: 'content-type', message: mediaType.message }];
      const refusal = new HttpProblem(
        415,
        'Unsupported Media Type',
        `content-type ${mediaType.message}`,
        problems,
      );
      return quarantine(reply, refusal, { ...record, reason: 'unsupported-media-type', problems });
    }

    const bytes = body.bytes;
    const json = parseJsonBody(bytes);
    if (!json.ok) {
      const problems = [json.problem];
      return quarantine(reply, badRequest(problems), { ...record, reason: 'malformed-json', problems });
    }
    const parsed = json.value;

    const normalization = normalizeFlireoEvent(parsed);
    if (!normalization.ok) {
      const problems = normalization.problems;
      return quarantine(reply, badRequest(problems), { ...record, reason: 'invalid-event', problems });
    }
    const event = normalization.event;
    // An event with neither call id nor time cannot be told apart from the same caller's next call by
    // content alone; the delivery's own identity (signed timestamp, else arrival) keeps both.
    const deliveryKey =
      event.callId === null && event.eventTime === null
        ? (authentication.signedTimestamp ?? receivedAt.toISOString())
        : undefined;
    const eventId = flireoEventId(parsed, deliveryKey);
    const stream =
      event.callId === null ? assistantRequestStreamName(receivedAt) : callStreamName(event.callId);
    const data: ArchivedCallEvent = {
      schemaVersion: archivedEventSchemaVersion,
      ...event,
      ...encodeRawBody(bytes),
    };
    if (!fitsInOneRecord(bytes, data)) {
      const problems = [
        { field: 'body', message: `is too large to archive (over ${maxRecordBytes} bytes once encoded)` },
      ];
      const truncated = truncateBody(bytes, request.headers, oversizedPrefixBytes);
      return quarantine(reply, tooLargeProblem(problems), {
        ...record,
        body: truncated,
        reason: 'body-too-large',
        problems,
      });
    }

    const relaying = relay?.relays(event.eventType) === true ? relay : undefined;
    const stopTimer = metrics.appendSeconds.startTimer();
    const archiving = archive
      .append(
        stream,
        { id: eventId, type: event.eventType, data, metadata: reception },
        relaying === undefined ? undefined : { timeoutMs: relaying.archiveBudgetMs },
      )
      .finally(() => {
        archiveSeconds = stopTimer();
      })
      .then((archived) => {
        const { duplicate, journaled } = archived;
        metrics.webhooks.inc({ outcome: duplicate ? 'duplicate' : journaled ? 'journaled' : 'accepted' });
        return { ...archived, archiveMs: archiveSeconds * 1000 };
      });
    let duplicate: boolean;
    let journaled: boolean;
    try {
      if (relaying !== undefined && relaying.relays(event.eventType)) {
        // Forwarding starts at once, while the request is archived: the answer waits for both.
        return await relaying.answer(reply, {
          eventType: event.eventType,
          eventId,
          stream,
          callId: event.callId,
          assistant: event.toAssistant,
          rawBody: bytes,
          parsed,
          contentType: declaredContentType(request),
          headers: request.headers,
          requestId: request.id,
          startedAt,
          archived: archiving,
        });
      }
      ({ duplicate, journaled } = await archiving);
    } catch (error) {
      if (isNotKept(error)) return unavailable(reply, error);
      throw error;
    }
    // tool-calls and assistant-request expect an answer (tool results, an assistant) from the
    // customer's own server; without relay mode calltrail is an archive alongside it (an extra server
    // URL, or sent copies), never the assistant backend, so it acknowledges these like any other event.
    return reply.code(202).send({ eventId, stream, duplicate, ...(journaled ? { journaled } : {}) });
  };

  app.post(
    '/webhooks/flireo',
    {
      schema: {
        summary: 'Receive a Flireo server event (signature or token header)',
        description,
        tags: ['webhooks'],
        consumes: ['application/json'],
        body: FlireoEventBody,
        response: responses,
      },
      validatorCompiler,
    },
    async (request, reply) => {
      await receive(request, reply, undefined);
      return reply;
    },
  );

  app.post(
    '/webhooks/flireo/:token',
    {
      schema: {
        summary: 'Receive a Flireo server event (token in the URL)',
        description,
        tags: ['webhooks'],
        consumes: ['application/json'],
        params: TokenParams,
        body: FlireoEventBody,
        response: responses,
      },
      validatorCompiler,
    },
    async (request, reply) => {
      await receive(request, reply, request.params.token);
      return reply;
    },
  );
};
