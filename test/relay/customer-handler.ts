/**
 * A real local HTTP server standing in for the customer's own Flireo handler, with one path per
 * behaviour (fast, slow, failing, garbage, huge, hanging, closing, redirecting). It records every
 * request it receives, exactly as received, so tests can check what calltrail forwarded.
 */
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface ReceivedRequest {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface CustomerHandler {
  readonly url: (path: string) => string;
  readonly received: ReceivedRequest[];
  close(): Promise<void>;
}

const json = (response: ServerResponse, status: number, body: unknown) => {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
};

/** The answer a correct handler gives: an assistant, or results naming every tool call asked for. */
const correctAnswer = (body: Buffer): unknown => {
  const request = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  const message = request['message'] as Record<string, unknown> | undefined;
  const type = request['eventType'] ?? message?.['type'];
  if (type === 'assistant-request') return { assistant: { name: 'Front desk', firstMessage: 'Hello' } };
  const tasks = (request['tasksInitiated'] ?? []) as { taskId: string }[];
  return { results: tasks.map((task) => ({ toolCallId: task.taskId, result: `done ${task.taskId}` })) };
};

export const startCustomerHandler = async (options: { slowMs: number }): Promise<CustomerHandler> => {
  const received: ReceivedRequest[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, work: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      work();
    }, ms);
    timers.add(timer);
  };
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks);
      const path = request.url ?? '/';
      received.push({ path, headers: request.headers, body });
      switch (path) {
        case '/fast':
          return json(response, 200, correctAnswer(body));
        case '/slow':
          return later(options.slowMs, () => json(response, 200, correctAnswer(body)));
        case '/fail':
          return json(response, 500, { error: { code: 'internal', message: 'handler crashed' } });
        case '/garbage':
          response.writeHead(200, { 'content-type': 'application/json' });
          return response.end('{"results": [ not json');
        case '/wrong-ids':
          return json(response, 200, { results: [{ toolCallId: 'someone-else', result: 'x' }] });
        case '/huge': {
          // 10 MiB, written as fast as the peer reads it.
          response.writeHead(200, { 'content-type': 'application/json' });
          const chunk = Buffer.alloc(64 * 1024, 0x20);
          let left = 160;
          const pump = () => {
            while (left > 0) {
              left -= 1;
              if (!response.write(chunk)) return void response.once('drain', pump);
            }
            response.end();
          };
          response.on('error', () => {});
          return pump();
        }
        case '/hang':
          return; // never answers; the socket is destroyed on close
        case '/close':
          return request.socket.destroy();
        case '/redirect':
          response.writeHead(302, { location: '/fast' });
          return response.end();
        default:
          return json(response, 404, { error: 'no such path' });
      }
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    received,
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
};
