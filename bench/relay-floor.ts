/**
 * The floor under relay mode on this machine, measured in the same run: bare `node:http` servers
 * doing the least an in-line archive must do, with the undici client relay mode uses.
 * - `proxy`: forwards each request's body to the handler and answers with the handler's answer (what
 *   standing in line costs at all: one more process and two more hops);
 * - `durable`: the same, while the body is inserted into PostgreSQL in parallel (one row, one durable
 *   commit), answering once both are done (what "never answer before the request is durable" costs);
 * - `journal`: the same with the body written to a local LMDB file synced like the outage journal's
 *   (the other durable record relay mode may answer on) instead of PostgreSQL;
 * - `sync`: the same with the body written to a preallocated local file and `fdatasync`ed: the least
 *   any durable record can cost here (one write, one flush, no database, no index).
 * No authentication, validation, logging or archive layers: calltrail minus this is its own doing.
 */
import { mkdtemp, open as openFile, rm, type FileHandle } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { open } from 'lmdb';
import pg from 'pg';
import { Agent, request } from 'undici';

export type RelayFloorKind = 'proxy' | 'durable' | 'journal' | 'sync';

export interface RelayFloor {
  readonly port: number;
  close(): Promise<void>;
}

interface HandlerAnswer {
  readonly status: number;
  readonly body: Buffer;
}

/** The sync relay's record: a file written in place (so a flush never has to allocate blocks), as a ring. */
const syncLogBytes = 64 * 1024 * 1024;

const openSyncLog = async (dir: string) => {
  const file: FileHandle = await openFile(path.join(dir, 'requests.log'), 'w');
  const zeros = Buffer.alloc(1024 * 1024);
  for (let at = 0; at < syncLogBytes; at += zeros.length) await file.write(zeros, 0, zeros.length, at);
  await file.sync();
  let end = 0;
  return {
    append: async (body: Buffer): Promise<void> => {
      if (end + body.length > syncLogBytes) end = 0;
      const at = end;
      end += body.length;
      await file.write(body, 0, body.length, at);
      await file.datasync();
    },
    close: () => file.close(),
  };
};

export const startRelayFloor = async (options: {
  readonly kind: RelayFloorKind;
  readonly handlerUrl: string;
  readonly databaseUrl: string;
}): Promise<RelayFloor> => {
  const pool =
    options.kind === 'durable' ? new pg.Pool({ connectionString: options.databaseUrl }) : undefined;
  await pool?.query('CREATE TABLE IF NOT EXISTS relay_floor_requests (id bigserial PRIMARY KEY, body text)');
  const localDir =
    options.kind === 'journal' || options.kind === 'sync'
      ? await mkdtemp(path.join(os.tmpdir(), 'calltrail-relay-floor-'))
      : undefined;
  const syncLog = options.kind === 'sync' && localDir !== undefined ? await openSyncLog(localDir) : undefined;
  const journal =
    options.kind !== 'journal' || localDir === undefined
      ? undefined
      : open<Buffer, number>({
          path: localDir,
          overlappingSync: false,
          eventTurnBatching: false,
          encoding: 'binary',
        });
  let sequence = 0;
  const agent = new Agent({ connections: 256, keepAliveTimeout: 60_000 });
  const forward = async (body: Buffer): Promise<HandlerAnswer> => {
    const answer = await request(options.handlerUrl, {
      dispatcher: agent,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    return { status: answer.statusCode, body: Buffer.from(await answer.body.arrayBuffer()) };
  };
  const server: Server = createServer((incoming, response) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      const body = Buffer.concat(chunks);
      const stored =
        pool?.query('INSERT INTO relay_floor_requests (body) VALUES ($1)', [body.toString()]) ??
        journal?.put((sequence += 1), body) ??
        syncLog?.append(body);
      Promise.all([forward(body), stored]).then(
        ([answer]) => {
          response.writeHead(answer.status, {
            'content-type': 'application/json',
            'content-length': answer.body.length,
          });
          response.end(answer.body);
        },
        () => {
          response.writeHead(502, { 'content-length': 0 });
          response.end();
        },
      );
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await agent.close();
      await pool?.end();
      await journal?.close();
      await syncLog?.close();
      if (localDir !== undefined) await rm(localDir, { recursive: true, force: true });
    },
  };
};
