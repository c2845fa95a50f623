/**
 * A real local HTTP receiver for forwarded deliveries: records every request (headers and exact
 * body bytes) and answers as the test says: a status, after a delay, never (hangs), or not at all
 * (down: the port refuses connections until it is up again).
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface ReceivedRequest {
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly eventId: string;
  readonly attempt: number;
  readonly receivedAt: number;
}

export type Answer =
  | { readonly status: number; readonly headers?: Record<string, string>; readonly body?: string | Buffer }
  | { readonly hang: true };

export interface Receiver {
  readonly url: string;
  readonly requests: ReceivedRequest[];
  /** Decides each answer; the default answers 200. */
  answer: (request: ReceivedRequest) => Answer;
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

export const startReceiver = async (): Promise<Receiver> => {
  const requests: ReceivedRequest[] = [];
  const sockets = new Set<Socket>();
  const hanging = new Set<ServerResponse>();
  let port = 0;
  const receiver: Receiver = {
    url: '',
    requests,
    answer: () => ({ status: 200 }),
    down: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
    },
    up: async () => {
      server = makeServer();
      await listen();
    },
    close: async () => {
      for (const response of hanging) response.destroy();
      await receiver.down().catch(() => {});
    },
  };
  const makeServer = (): Server => {
    const created = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const received: ReceivedRequest = {
          url: request.url ?? '',
          headers: request.headers,
          body: Buffer.concat(chunks),
          eventId: String(request.headers['x-calltrail-event-id']),
          attempt: Number(request.headers['x-calltrail-attempt']),
          receivedAt: performance.now(),
        };
        requests.push(received);
        const answer = receiver.answer(received);
        if ('hang' in answer) {
          hanging.add(response);
          return;
        }
        response.writeHead(answer.status, answer.headers ?? {});
        response.end(answer.body ?? '');
      });
    });
    created.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    return created;
  };
  let server = makeServer();
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        port = (server.address() as AddressInfo).port;
        resolve();
      });
    });
  await listen();
  (receiver as { url: string }).url = `http://127.0.0.1:${port}/flireo-events`;
  return receiver;
};
