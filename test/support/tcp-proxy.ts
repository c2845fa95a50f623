/**
 * A TCP proxy on 127.0.0.1 in front of a store, so a test can take the store away from calltrail and
 * give it back without touching the store itself: `goDown()` refuses new connections and cuts the
 * open ones (as a crashed server does), `blackHole()` accepts connections but never answers and
 * stalls the open ones (as a partition does), `comeBack()` forwards again on the same port, and
 * `cutOpenConnections()` cuts the open ones while new ones still get through (a connection lost).
 */
import net from 'node:net';

export interface TcpProxy {
  readonly port: number;
  goDown(): Promise<void>;
  blackHole(): void;
  comeBack(): Promise<void>;
  cutOpenConnections(): void;
  close(): Promise<void>;
}

export const startTcpProxy = async (target: { host: string; port: number }): Promise<TcpProxy> => {
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  let blackHoled = false;

  const track = (socket: net.Socket) => {
    // As the endpoints do: Nagle's algorithm in the middle would hold a short message back until
    // the previous one is acknowledged, which a delayed acknowledgement puts off by up to 40 ms.
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  };

  const listen = (port: number) =>
    new Promise<net.Server>((resolve, reject) => {
      const created = net.createServer((client) => {
        track(client);
        client.on('error', () => client.destroy());
        if (blackHoled) return; // accepted, never answered
        const upstream = net.connect(target.port, target.host);
        track(upstream);
        upstream.on('error', () => client.destroy());
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
        client.pipe(upstream).pipe(client);
      });
      created.once('error', reject);
      created.listen(port, '127.0.0.1', () => resolve(created));
    });

  const cutConnections = () => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };

  const goDown = async () => {
    const stopping = server;
    server = undefined;
    cutConnections();
    if (stopping) await new Promise<void>((resolve) => stopping.close(() => resolve()));
  };

  server = await listen(0);
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  const port = address.port;

  return {
    port,
    goDown,
    blackHole: () => {
      blackHoled = true;
      for (const socket of sockets) socket.pause();
    },
    comeBack: async () => {
      if (blackHoled) {
        // The stalled connections never recover, as after a partition: the client must reconnect.
        blackHoled = false;
        cutConnections();
      }
      server ??= await listen(port);
    },
    cutOpenConnections: cutConnections,
    close: goDown,
  };
};
