/**
 * `calltrail replay`, on both adapters: JSON lines to a file, and redelivery to a real HTTP receiver
 * on 127.0.0.1 — every event once, in global order, with its exact raw bytes and content type,
 * rate-limited, retried on 5xx, stopped on persistent failure or interruption, and resumable from
 * the position it reports.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  archivedEventSchemaVersion,
  encodeRawBody,
  quarantinedRequestType,
  type ArchivedCallEvent,
  type QuarantinedRequest,
} from '../../src/archive/archived-event.ts';
import {
  assistantRequestStreamName,
  callStreamName,
  quarantineStreamName,
} from '../../src/archive/streams.ts';
import {
  parseReplayOptions,
  runReplay,
  type ReplayOptions,
  type ReplayResult,
} from '../../src/cli/replay.ts';
import { formatPosition, type ProposedEvent, type RecordedEvent } from '../../src/event-store/event-store.ts';
import { archivedCallEvent, statusUpdate } from '../support/call-events.ts';
import { appendAll, collect, eventStoreKinds, openAuditStores, runTag, type AuditStores } from './support.ts';

interface Received {
  readonly body: Buffer;
  readonly headers: IncomingHttpHeaders;
}

/** A customer's server: records what it accepts; `answer` decides each response. */
const startReceiver = async (
  answer: (request: Received, index: number) => { status: number; headers?: Record<string, string> },
) => {
  const accepted: Received[] = [];
  let index = 0;
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const received = { body: Buffer.concat(chunks), headers: request.headers };
      const { status, headers } = answer(received, index);
      index += 1;
      if (status >= 200 && status < 300) accepted.push(received);
      response.writeHead(status, headers).end(status >= 400 ? 'no' : 'ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/flireo`,
    accepted,
    requests: () => index,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
};

const callEvent = (callId: string, status: 'in-progress' | 'ended', raw: Buffer): ProposedEvent => {
  const { data, metadata } = archivedCallEvent(statusUpdate(callId, status, '2026-03-01T10:00:00.000Z'));
  return {
    id: crypto.randomUUID(),
    type: data.eventType,
    data: { ...data, ...encodeRawBody(raw) },
    metadata,
  };
};

const assistantRequest = (raw: Buffer): ProposedEvent => {
  const { metadata } = archivedCallEvent({ callId: 'unused' });
  const data: ArchivedCallEvent = {
    schemaVersion: archivedEventSchemaVersion,
    eventType: 'assistant-request',
    rawEventType: 'assistant-request',
    payloadGeneration: 1,
    callId: null,
    eventTime: null,
    status: null,
    rawStatus: null,
    fromCaller: '+31611111111',
    toAssistant: '+4930123456',
    debuggingArtifact: null,
    endedReason: null,
    durationSeconds: null,
    startedAt: null,
    endedAt: null,
    ...encodeRawBody(raw),
  };
  return { id: crypto.randomUUID(), type: 'assistant-request', data, metadata };
};

const quarantined = (raw: Buffer, contentType: string): ProposedEvent => {
  const data: QuarantinedRequest = {
    schemaVersion: archivedEventSchemaVersion,
    reason: 'unsupported-media-type',
    problems: [{ field: 'content-type', message: 'is not JSON' }],
    contentType,
    ...encodeRawBody(raw),
  };
  return {
    id: crypto.randomUUID(),
    type: quarantinedRequestType,
    data,
    metadata: archivedCallEvent({ callId: 'x' }).metadata,
  };
};

const quiet = () => ({ stdout: new PassThrough(), stderr: new PassThrough() });

describe.each(eventStoreKinds)('on the %s event store', (kind) => {
  let stores: AuditStores;
  let scratch: string;
  let receiver: Awaited<ReturnType<typeof startReceiver>> | undefined;
  const tag = runTag();
  const callA = `a-${tag}`;
  const callB = `b-${tag}`;
  const raws = [
    Buffer.from('{"eventType":"status-update","callSession":"a","status":"in-progress"}'),
    Buffer.from('{ "eventType" : "assistant-request" }\r\n'),
    Buffer.from([0x7b, 0xff, 0x00, 0x7d]),
    Buffer.from('{"eventType":"status-update","callSession":"b","status":"in-progress","note":"📞"}'),
    Buffer.from('{"eventType":"status-update","callSession":"a","status":"ended"}'),
  ];
  const quarantineRaw = Buffer.from('callSession=a&status=ended');
  /** The events redelivery selects by default (no quarantine), in global order. */
  let deliverable: RecordedEvent[];
  let everything: RecordedEvent[];

  beforeAll(async () => {
    stores = await openAuditStores(kind);
    scratch = await mkdtemp(path.join(os.tmpdir(), 'calltrail-replay-'));
    const day = new Date('2026-03-01T10:00:00.000Z');
    await appendAll(stores.eventStore, callStreamName(callA), [callEvent(callA, 'in-progress', raws[0]!)]);
    await appendAll(stores.eventStore, assistantRequestStreamName(day), [assistantRequest(raws[1]!)]);
    await appendAll(stores.eventStore, callStreamName(callA), [callEvent(callA, 'in-progress', raws[2]!)]);
    await appendAll(stores.eventStore, quarantineStreamName(day), [
      quarantined(quarantineRaw, 'application/x-www-form-urlencoded'),
    ]);
    await appendAll(stores.eventStore, callStreamName(callB), [callEvent(callB, 'in-progress', raws[3]!)]);
    await appendAll(stores.eventStore, callStreamName(callA), [callEvent(callA, 'ended', raws[4]!)]);
    everything = await collect(
      stores.eventStore.readAll({ streamPrefixes: ['call-', 'assistant-requests-', 'quarantine-'] }),
    );
    deliverable = everything.filter((event) => !event.streamName.startsWith('quarantine-'));
  });

  afterEach(async () => {
    await receiver?.close();
    receiver = undefined;
  });

  afterAll(async () => {
    await stores?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  const replay = async (
    options: ReplayOptions,
    io = quiet(),
    signal?: AbortSignal,
  ): Promise<ReplayResult & { stderr: string; stdout: string }> => {
    const stdoutText = text(io.stdout);
    const stderrText = text(io.stderr);
    const result = await runReplay(parseReplayOptions(options), {
      eventStore: stores.eventStore,
      ...io,
      ...(signal ? { signal } : {}),
    });
    io.stdout.end();
    io.stderr.end();
    return { ...result, stdout: await stdoutText, stderr: await stderrText };
  };

  describe('as JSON lines', () => {
    it('writes the whole archive in global order to a file, and resumes after a position', async () => {
      const out = path.join(scratch, `all-${kind}.jsonl`);
      const all = await replay({ out });
      expect(all.result).toBe('completed');
      const lines = (await readFile(out, 'utf8'))
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line) as { eventId: string; position: string });
      expect(lines.map((line) => line.eventId)).toEqual(everything.map((event) => event.id));
      expect(all.stderr).toContain(`resume with: --after ${formatPosition(everything.at(-1)!.position)}`);

      const resumed = await replay({ after: lines[2]!.position });
      expect(
        resumed.stdout
          .trimEnd()
          .split('\n')
          .map((line) => (JSON.parse(line) as { eventId: string }).eventId),
      ).toEqual(everything.slice(3).map((event) => event.id));
    });

    it("writes one call's events with --call", async () => {
      const result = await replay({ call: callA });
      const ids = result.stdout
        .trimEnd()
        .split('\n')
        .map((line) => (JSON.parse(line) as { eventId: string }).eventId);
      expect(ids).toEqual(
        everything.filter((event) => event.streamName === callStreamName(callA)).map((event) => event.id),
      );
      expect(result.events).toBe(3);
    });
  });

  describe('to a URL', () => {
    it('re-posts every event once, in global order, with its exact bytes and content type', async () => {
      const target = await startReceiver(() => ({ status: 202 }));
      receiver = target;
      const started = performance.now();
      const result = await replay({ toUrl: target.url, rate: '20' });
      const elapsed = performance.now() - started;
      expect(result.result).toBe('completed');
      expect(target.accepted.map((request) => request.body.toString('base64'))).toEqual(
        [raws[0]!, raws[1]!, raws[2]!, raws[3]!, raws[4]!].map((raw) => raw.toString('base64')),
      );
      expect(target.accepted.map((request) => request.headers['x-calltrail-event-id'])).toEqual(
        deliverable.map((event) => event.id),
      );
      expect(target.accepted.map((request) => request.headers['x-calltrail-position'])).toEqual(
        deliverable.map((event) => formatPosition(event.position)),
      );
      expect(new Set(target.accepted.map((request) => request.headers['content-type']))).toEqual(
        new Set(['application/json']),
      );
      expect(target.accepted.every((request) => request.headers['x-webhook-signature'] === undefined)).toBe(
        true,
      );
      // 5 requests at 20/s: at least 4 intervals of 50 ms.
      expect(elapsed).toBeGreaterThanOrEqual(195);
      const outcomes = result.stdout
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line) as { result: string; status: number });
      expect(outcomes.map((outcome) => [outcome.result, outcome.status])).toEqual(
        deliverable.map(() => ['delivered', 202]),
      );
      expect(result.stderr).toContain('replay completed: 5 delivered, 0 rejected, 0 skipped');
      expect(result.stderr).toContain(`resume with: --after ${formatPosition(deliverable.at(-1)!.position)}`);
    });

    it('re-posts quarantined requests with their original content type only when asked', async () => {
      const target = await startReceiver(() => ({ status: 200 }));
      receiver = target;
      await replay({ toUrl: target.url, rate: '1000', includeQuarantine: true });
      expect(target.accepted).toHaveLength(everything.length);
      const form = target.accepted.find((request) => request.body.equals(quarantineRaw));
      expect(form?.headers['content-type']).toBe('application/x-www-form-urlencoded');
    });

    it('retries a 5xx, records a 4xx and goes on', async () => {
      const target = await startReceiver((_request, index) =>
        index === 0
          ? { status: 503, headers: { 'retry-after': '0' } }
          : index === 2
            ? { status: 422 }
            : { status: 204 },
      );
      receiver = target;
      const result = await replay({ toUrl: target.url, rate: '1000' });
      expect(result.result).toBe('completed');
      const outcomes = result.stdout
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line) as { result: string; status: number; attempts: number });
      expect(outcomes.map((outcome) => [outcome.result, outcome.status, outcome.attempts])).toEqual([
        ['delivered', 204, 2],
        ['rejected', 422, 1],
        ['delivered', 204, 1],
        ['delivered', 204, 1],
        ['delivered', 204, 1],
      ]);
      expect(target.accepted).toHaveLength(4);
    });

    it('stops on a persistent failure and resumes from the position it printed, nothing twice', async () => {
      let failing = true;
      const target = await startReceiver((request) =>
        failing && request.headers['x-calltrail-event-id'] === deliverable[2]!.id
          ? { status: 500, headers: { 'retry-after': '0' } }
          : { status: 200 },
      );
      receiver = target;
      const first = await replay({ toUrl: target.url, rate: '1000' });
      expect(first.result).toBe('failed');
      expect(first.resumeAfter).toEqual(deliverable[1]!.position);
      expect(first.stderr).toContain(
        `stopped at ${formatPosition(deliverable[2]!.position)} (500 after 4 attempts)`,
      );
      expect(first.stderr).toContain(`resume with: --after ${formatPosition(deliverable[1]!.position)}`);
      expect(target.requests()).toBe(2 + 4);

      failing = false;
      const second = await replay({
        toUrl: target.url,
        rate: '1000',
        after: formatPosition(first.resumeAfter!),
      });
      expect(second.result).toBe('completed');
      expect(target.accepted.map((request) => request.headers['x-calltrail-event-id'])).toEqual(
        deliverable.map((event) => event.id),
      );
    });

    it('stops when interrupted and resumes without a gap or a repeat', async () => {
      const abort = new AbortController();
      const target = await startReceiver((_request, index) => {
        if (index === 1) abort.abort();
        return { status: 200 };
      });
      receiver = target;
      const first = await replay({ toUrl: target.url, rate: '5' }, quiet(), abort.signal);
      expect(first.result).toBe('interrupted');
      const delivered = target.accepted.length;
      expect(delivered).toBeGreaterThanOrEqual(1);
      expect(delivered).toBeLessThan(deliverable.length);
      const second = await replay({
        toUrl: target.url,
        rate: '1000',
        after: formatPosition(first.resumeAfter!),
      });
      expect(second.result).toBe('completed');
      expect(target.accepted.map((request) => request.headers['x-calltrail-event-id'])).toEqual(
        deliverable.map((event) => event.id),
      );
    });

    it('fails after retries when nothing listens, reporting where to resume', async () => {
      const target = await startReceiver(() => ({ status: 200 }));
      const url = target.url;
      await target.close();
      const result = await replay({
        toUrl: url,
        rate: '1000',
        after: formatPosition(deliverable[0]!.position),
      });
      expect(result.result).toBe('failed');
      expect(result.resumeAfter).toEqual(deliverable[0]!.position);
      expect(result.stderr).toMatch(/ECONNREFUSED|fetch failed/);
    }, 20_000);
  });

  it.each([
    [{ from: 'today' }, '--from'],
    [{ from: '2026-03-02T00:00:00Z', to: '2026-03-01T00:00:00Z' }, '--from'],
    [{ after: '12' }, '--after'],
    [{ call: 'a b' }, '--call'],
    [{ call: 'a', prefix: 'call-a' }, '--prefix'],
    [{ prefix: 'other-' }, '--prefix'],
    [{ toUrl: 'ftp://example.com/' }, '--to-url'],
    [{ toUrl: 'not a url' }, '--to-url'],
    [{ toUrl: 'http://127.0.0.1/', rate: '0' }, '--rate'],
    [{ toUrl: 'http://127.0.0.1/', rate: 'fast' }, '--rate'],
    [{ rate: '5' }, '--rate'],
    [{ toUrl: 'http://127.0.0.1/', out: 'x.jsonl' }, '--out'],
    [{ toUrl: 'http://127.0.0.1/', prefix: 'quarantine-' }, '--prefix'],
  ])('refuses %o naming %s', (options, option) => {
    expect(() => parseReplayOptions(options)).toThrow(new RegExp(`^${option}`));
  });
});
