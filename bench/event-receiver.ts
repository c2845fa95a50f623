/**
 * The customer's server as the forwarding benchmark stands it in: a bare `node:http` server, in a
 * process of its own, answering 200 at once and noting when each event id first arrived, in
 * milliseconds since the epoch (`performance.timeOrigin` + `performance.now()`, comparable across
 * the benchmark's processes).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EventReceiver {
  readonly port: number;
  /** Every event id received, with when it first arrived. */
  readonly arrivals: () => [eventId: string, atEpochMs: number][];
  readonly requests: () => number;
  close(): Promise<void>;
}

export const startEventReceiver = async (): Promise<EventReceiver> => {
  const arrivals = new Map<string, number>();
  let requests = 0;
  const server: Server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      requests += 1;
      const id = String(request.headers['x-calltrail-event-id']);
      if (!arrivals.has(id)) arrivals.set(id, performance.timeOrigin + performance.now());
      response.writeHead(200).end();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    arrivals: () => [...arrivals],
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
};
