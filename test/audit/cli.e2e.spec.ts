/**
 * The `calltrail export` and `calltrail replay` commands as a user runs them: the real binary in a
 * child process, on a Postgres event store and read models given by URL.
 */
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callStreamName } from '../../src/archive/streams.ts';
import { formatPosition, type RecordedEvent } from '../../src/event-store/event-store.ts';
import { proposedCallEvent, statusUpdate } from '../support/call-events.ts';
import type { TestApp } from '../support/app.ts';
import {
  appendAll,
  bearer,
  collect,
  openAuditStores,
  projectCall,
  runTag,
  startAuditApp,
  type AuditStores,
} from './support.ts';

const binary = fileURLToPath(new URL('../../bin/calltrail.js', import.meta.url));

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

let stores: AuditStores;
let harness: TestApp;
let scratch: string;
let events: RecordedEvent[];
const tag = runTag();
const calls = [`x1-${tag}`, `x2-${tag}`, `x3-${tag}`];

const run = (
  args: readonly string[],
  options: { onStdout?: (chunk: string, child: ReturnType<typeof spawn>) => void } = {},
): Promise<Run> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [binary, ...args], {
      env: {
        PATH: process.env['PATH'],
        HOME: process.env['HOME'],
        CALLTRAIL_EVENTSTORE_URL: stores.databaseUrl,
        CALLTRAIL_DATABASE_URL: stores.databaseUrl,
        CALLTRAIL_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      options.onStdout?.(chunk, child);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });

beforeAll(async () => {
  stores = await openAuditStores('postgres');
  harness = await startAuditApp(stores);
  scratch = await mkdtemp(path.join(os.tmpdir(), 'calltrail-cli-'));
  for (const [index, callId] of calls.entries()) {
    await appendAll(stores.eventStore, callStreamName(callId), [
      proposedCallEvent(statusUpdate(callId, 'in-progress', `2026-03-01T10:0${index}:00.000Z`)),
      proposedCallEvent(
        statusUpdate(callId, 'ended', `2026-03-01T10:0${index}:30.000Z`, {
          endedReason: `=reason ${index}, "quoted"`,
        }),
      ),
    ]);
    await projectCall(stores, callId);
  }
  events = await collect(stores.eventStore.readAll({ streamPrefixes: ['call-'] }));
});

afterAll(async () => {
  await harness?.app.close();
  await stores?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe('calltrail export terminations', () => {
  it('writes the CSV the API serves', async () => {
    const out = path.join(scratch, 'terminations.csv');
    const result = await run([
      'export',
      'terminations',
      '--from',
      '2026-03-01T00:00:00Z',
      '--to',
      '2026-03-02T00:00:00Z',
      '--out',
      out,
    ]);
    expect(result.stderr).toContain(`wrote 3 rows to ${out}`);
    expect(result.code).toBe(0);
    const api = await harness.app.inject({
      method: 'GET',
      url: '/exports/terminations.csv?from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z',
      headers: bearer(),
    });
    const file = await readFile(out);
    expect(file.equals(api.rawPayload)).toBe(true);
    const records = parse<Record<string, string>>(file, { columns: true, record_delimiter: '\r\n' });
    expect(records.map((record) => record['ended_reason'])).toEqual(
      [0, 1, 2].map((i) => `'=reason ${i}, "quoted"`),
    );
  }, 60_000);

  it('names a bad option and exits 2 without touching the stores', async () => {
    const result = await run([
      'export',
      'terminations',
      '--from',
      'soon',
      '--to',
      '2026-03-02T00:00:00Z',
      '--out',
      'x',
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--from: must be an ISO 8601 date-time');
  }, 60_000);
});

describe('calltrail replay', () => {
  it("prints one call's events as JSON lines", async () => {
    const result = await run(['replay', '--call', calls[1]!]);
    expect(result.code).toBe(0);
    const ids = result.stdout
      .trimEnd()
      .split('\n')
      .map((line) => (JSON.parse(line) as { eventId: string }).eventId);
    expect(ids).toEqual(
      events.filter((event) => event.streamName === callStreamName(calls[1]!)).map((event) => event.id),
    );
    expect(result.stderr).toContain('resume with: --after');
  }, 60_000);

  it('re-posts to a URL, stops on Ctrl-C after the request in flight, and resumes from the printed position', async () => {
    const received: string[] = [];
    const server: Server = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        received.push(String(request.headers['x-calltrail-event-id']));
        response.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    try {
      let interrupted = false;
      const first = await run(['replay', '--to-url', url, '--rate', '4'], {
        onStdout: (_chunk, child) => {
          if (!interrupted) {
            interrupted = true;
            child.kill('SIGINT');
          }
        },
      });
      expect(first.code).toBe(130);
      const resume = /resume with: --after (\d+\/\d+)/.exec(first.stderr)?.[1];
      expect(resume).toBeDefined();
      expect(received.length).toBeGreaterThanOrEqual(1);
      expect(received.length).toBeLessThan(events.length);
      expect(resume).toBe(formatPosition(events[received.length - 1]!.position));

      const second = await run(['replay', '--to-url', url, '--rate', '100', '--after', resume!]);
      expect(second.code).toBe(0);
      expect(received).toEqual(events.map((event) => event.id));
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }, 60_000);
});
