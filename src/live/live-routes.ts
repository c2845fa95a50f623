/**
 * `GET /live`: archived events as Server-Sent Events, as they are stored. Authenticated like the
 * audit API (a bearer token, or the console's session cookie); filterable by assistant and event
 * type; resumable: each event's SSE id is its global position, and a client that reconnects with
 * `Last-Event-ID` gets everything it missed first. A client that does not read fast enough to keep
 * its unsent data under `CALLTRAIL_LIVE_CLIENT_BUFFER_BYTES` gets a `dropped` event and is
 * disconnected; it may reconnect with its last id.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Counter, Gauge } from 'prom-client';
import Type from 'typebox';
import type { AppDependencies } from '../app.ts';
import { CallEventType } from '../archive/archived-event.ts';
import { assistantRequestStreamPrefix, callStreamPrefix } from '../archive/streams.ts';
import { auditSecurity, problemResponses } from '../audit/api-docs.ts';
import { toArchivedEventView } from '../audit/archived-event-view.ts';
import { TextFilter, positionPatternText, parsePositionParameter } from '../audit/parameters.ts';
import { formatPosition, type RecordedEvent } from '../event-store/event-store.ts';
import { badRequest, serviceUnavailable } from '../http/problem.ts';
import type { Logger } from '../logger.ts';
import { openLiveFeed } from './live-feed.ts';

const eventTypes = CallEventType.anyOf.map((literal) => literal.const);

const LiveQuery = Type.Object(
  {
    assistant: Type.Optional(TextFilter("Only events naming this assistant's number, exactly")),
    type: Type.Optional(
      Type.String({
        description: `Only these event types, comma-separated: ${eventTypes.join(', ')}`,
        maxLength: 256,
        examples: ['status-update,end-of-call-report'],
      }),
    ),
  },
  { additionalProperties: false },
);

const LiveHeaders = Type.Object({
  'last-event-id': Type.Optional(
    Type.String({
      pattern: positionPatternText,
      description: 'The id of the last event received: only later events are sent, missed ones first',
    }),
  ),
});

/** Comments every so often keep proxies from closing an idle stream, and notice gone clients. */
const keepAliveMs = 15_000;
/** How long a dropped client's last words may take to leave before its socket is destroyed. */
const dropLingerMs = 5_000;

const parseTypes = (text: string | undefined): ReadonlySet<string> | undefined => {
  if (text === undefined) return undefined;
  const types = text.split(',').map((type) => type.trim());
  const unknown = types.filter((type) => !eventTypes.includes(type as (typeof eventTypes)[number]));
  if (unknown.length > 0 || types.length === 0) {
    throw badRequest([
      {
        field: 'querystring/type',
        message: `must be a comma-separated list of ${eventTypes.join(', ')}; unknown: ${unknown.join(', ')}`,
      },
    ]);
  }
  return new Set(types);
};

const field = (data: unknown, name: string): unknown =>
  typeof data === 'object' && data !== null ? (data as Record<string, unknown>)[name] : undefined;

/** The event as the audit API shows archived events, plus its call id when it belongs to a call. */
export const liveEventData = (event: RecordedEvent): string => {
  const callId = field(event.data, 'callId');
  return JSON.stringify({
    callId: typeof callId === 'string' ? callId : null,
    ...toArchivedEventView(event),
  });
};

/** An SSE message, and the same bytes framed as one HTTP/1.1 chunk. */
interface SseMessage {
  readonly bytes: Buffer;
  readonly chunk: Buffer;
}

const crlf = Buffer.from('\r\n');

export const sseMessage = (text: string): SseMessage => {
  const bytes = Buffer.from(text);
  return { bytes, chunk: Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, crlf]) };
};

/**
 * Writes a stream's messages. On a chunked HTTP/1.1 response each message goes to the socket as
 * one chunk framed once for all clients, not as the response's size line, data and line end. The
 * socket is corked until the current tick's work is done, as the response does, so the events of
 * one read reach each client in one write. Otherwise (HTTP/1.0) through the response.
 */
const sseWriter = (response: ServerResponse) => {
  response.flushHeaders();
  const socket = response.chunkedEncoding ? response.socket : null;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket?.uncork();
  };
  return {
    write: (message: SseMessage): void => {
      if (socket === null) {
        response.write(message.bytes);
        return;
      }
      if (!corked) {
        corked = true;
        socket.cork();
        process.nextTick(uncork);
      }
      socket.write(message.chunk);
    },
    /** Bytes written and not yet taken by the client's connection. */
    get buffered(): number {
      return socket !== null ? socket.writableLength : response.writableLength;
    },
  };
};

const keepAliveMessage = sseMessage(': keep-alive\n\n');

export const liveRoutes: FastifyPluginAsyncTypebox<AppDependencies> = async (app, dependencies) => {
  const { config, metrics } = dependencies;
  const limits = config.live;
  const feed = openLiveFeed(dependencies.eventStore, app.log as Logger, {
    streamPrefixes: [callStreamPrefix, assistantRequestStreamPrefix],
    maxPendingEvents: 10_000,
    catchUpPageSize: 500,
    retryInitialMs: 250,
    retryMaxMs: 10_000,
  });
  const connected = new Gauge({
    name: 'calltrail_live_clients',
    help: 'Clients connected to GET /live',
    registers: [metrics.registry],
    collect() {
      this.set(feed.clientCount);
    },
  });
  void connected;
  const dropped = new Counter({
    name: 'calltrail_live_clients_dropped_total',
    help: 'GET /live clients disconnected for not reading fast enough',
    registers: [metrics.registry],
  });
  // Before the server waits for open connections to end: a stream would otherwise keep it open.
  app.addHook('preClose', () => feed.close());
  /**
   * The feed hands every client the same event object: it is encoded once, not once per client
   * (with a hundred clients, encoding each event for each was most of the fan-out's cost). Weak, so
   * it holds an event no longer than the feed does.
   */
  const encoded = new WeakMap<RecordedEvent, SseMessage>();
  const messageOf = (event: RecordedEvent): SseMessage => {
    let message = encoded.get(event);
    if (message === undefined) {
      message = sseMessage(`id: ${formatPosition(event.position)}\ndata: ${liveEventData(event)}\n\n`);
      encoded.set(event, message);
    }
    return message;
  };

  app.get(
    '/live',
    {
      schema: {
        summary: 'Archived events as Server-Sent Events, live',
        description:
          'Each SSE message has `id` = the global position ("<commit>/<prepare>") and `data` = the ' +
          'archived event as `GET /calls/:callId/events` shows it, plus `callId`. Reconnect with ' +
          '`Last-Event-ID` to resume without gaps. A client that falls more than ' +
          '`CALLTRAIL_LIVE_CLIENT_BUFFER_BYTES` behind receives `event: dropped` and is disconnected. ' +
          'Comment lines keep the connection alive. `assistant` matches events that carry the ' +
          "assistant's number.",
        tags: ['live'],
        security: auditSecurity,
        querystring: LiveQuery,
        headers: LiveHeaders,
        response: {
          200: {
            description: 'The event stream',
            content: { 'text/event-stream': { schema: Type.String() } },
          },
          ...problemResponses,
        },
      },
    },
    async (request, reply) => {
      const types = parseTypes(request.query.type);
      const assistant = request.query.assistant;
      const lastEventId = parsePositionParameter(request.headers['last-event-id'], 'headers/last-event-id');
      if (feed.clientCount >= limits.maxClients) {
        throw serviceUnavailable(`${limits.maxClients} live clients are already connected`, 10);
      }
      // A new client's stream starts at a position known before it is answered, so nothing stored
      // once it has its answer can be missed; a store that cannot say where that is gets a 503, not
      // a stream with a silent gap.
      let after = lastEventId;
      if (after === undefined) {
        try {
          after = await feed.startPosition();
        } catch (error) {
          request.log.warn({ err: error }, 'live: the event store could not be read');
          throw serviceUnavailable('the event store cannot be read; retry later', 5);
        }
      }
      if (request.raw.destroyed) return reply;
      reply.hijack();
      const response = reply.raw;
      response.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-accel-buffering': 'no',
        'x-request-id': request.id,
      });
      const stream = sseWriter(response);
      stream.write(sseMessage('retry: 2000\n: connected\n\n'));
      let ended = false;
      const end = () => {
        if (ended) return;
        ended = true;
        clearInterval(keepAlive);
        response.end();
        setTimeout(() => response.destroy(), dropLingerMs).unref();
      };
      const fits = () => stream.buffered <= limits.clientBufferBytes;
      const connection = feed.connect(
        {
          wants: (event) =>
            (types === undefined || types.has(event.type)) &&
            (assistant === undefined || field(event.data, 'toAssistant') === assistant),
          deliver: (event) => {
            // Judged before writing, so one event larger than the limit still reaches a client that
            // keeps up; what waits for a client is bounded by the limit plus one event.
            if (ended || !fits()) return false;
            stream.write(messageOf(event));
            return true;
          },
          drop: (reason) => {
            if (ended) return;
            if (reason === 'slow') {
              dropped.inc();
              request.log.warn(
                { bufferedBytes: stream.buffered },
                'live client dropped: not reading fast enough',
              );
            }
            const detail =
              reason === 'slow'
                ? 'the client did not read fast enough; reconnect with Last-Event-ID to resume'
                : 'the server is shutting down; reconnect with Last-Event-ID to resume';
            stream.write(sseMessage(`event: dropped\ndata: ${JSON.stringify({ reason, detail })}\n\n`));
            end();
          },
        },
        after,
      );
      const keepAlive = setInterval(() => {
        if (!ended) stream.write(keepAliveMessage);
      }, keepAliveMs);
      response.on('close', () => {
        connection.close();
        ended = true;
        clearInterval(keepAlive);
      });
      connection.ready.catch((error: unknown) => {
        request.log.warn({ err: error }, 'live client could not catch up; disconnecting');
        stream.write(
          sseMessage(
            `event: dropped\ndata: ${JSON.stringify({ reason: 'unavailable', detail: 'the event store could not be read; reconnect later' })}\n\n`,
          ),
        );
        end();
      });
    },
  );
};
