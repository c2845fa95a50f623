/**
 * A protocol-level EventStoreDB server for tests: the real `@eventstore/db-client` talks to it over
 * real gRPC (insecure, single node, as `esdb://host:port?tls=false`). It serves the Streams and
 * ServerFeatures services from the service definitions that ship with the client, over an
 * in-memory store that keeps the real server's rules.
 *
 * Fault injection lets tests see what happens when the store fails: `goDown()` refuses new
 * connections and cuts open ones (clients get UNAVAILABLE) and `comeBack()` serves the same data on
 * the same port again; `dropSubscriptions()` ends live subscriptions;
 * `setWriteDelay(ms)` makes writes slow (past the write timeout they fail with a timeout), and
 * `delayedWritesInFlight` says how many slowed writes have not yet been written or timed out.
 */
import { readFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Server, ServerCredentials, type UntypedServiceImplementation } from '@grpc/grpc-js';
import streamsGrpc from '@eventstore/db-client/generated/streams_grpc_pb.js';
import serverFeaturesGrpc from '@eventstore/db-client/generated/serverfeatures_grpc_pb.js';
import { authenticated } from './authorization.ts';
import { CallRegistry } from './call-registry.ts';
import { rpcExceptions } from './protocol.ts';
import { createServerFeaturesService } from './server-features-service.ts';
import { InMemoryEventStore, type StoreOptions } from './store.ts';
import { createAppendHandler, createBatchAppendHandler } from './streams-append.ts';
import { createDeleteHandler, createTombstoneHandler } from './streams-delete.ts';
import { createReadHandler } from './streams-read.ts';

export interface EventStoreDbTestServerOptions extends StoreOptions {
  /** 0 or absent: any free port. */
  readonly port?: number;
  readonly host?: string;
  /** The server's bound on a write; 2 s by default, as `--write-timeout-ms`. */
  readonly writeTimeoutMs?: number;
  /** What `GetSupportedMethods` reports as the server version. */
  readonly serverVersion?: string;
  /**
   * Serve TLS (with the certificate in `tls/`), authenticate callers and enforce ACLs, as a server
   * started without `--insecure`. Clients connect with `url`, which trusts that certificate, and add
   * credentials (`esdb://user:password@...`) or call anonymously.
   */
  readonly secure?: boolean;
}

const tlsFolder = fileURLToPath(new URL('./tls/', import.meta.url));
/** The certificate a secure test server presents, for a client's `tlsCAFile`. */
export const testServerCertificate = path.join(tlsFolder, 'cert.pem');

export interface EventStoreDbTestServer {
  /** `esdb://host:port?tls=false`, or with `secure`, `esdb://host:port?tls=true&tlsCAFile=...`. */
  readonly url: string;
  readonly port: number;
  readonly store: InMemoryEventStore;
  /** Whether the server is currently accepting connections. */
  readonly isUp: boolean;
  /** Stops listening and drops every connection and call; the data is kept. */
  goDown(): Promise<void>;
  /** Listens again on the same port with the same data. */
  comeBack(): Promise<void>;
  /** Ends every live subscription with UNAVAILABLE, as a failing node does; returns how many. */
  dropSubscriptions(): number;
  /** Makes every write take `ms` (0 restores); past the write timeout, writes time out unwritten. */
  setWriteDelay(ms: number): void;
  /** Writes slowed by `setWriteDelay` that are still waiting: 0 once each is written or timed out. */
  readonly delayedWritesInFlight: number;
  /** How many calls each method received (`read`, `append`, `batchAppend`, ...): which path a client took. */
  readonly callCounts: Readonly<Record<string, number>>;
  /** How many events reads of `$all` have sent: what they cost. */
  readonly allEventsSent: number;
  stop(): Promise<void>;
}

const maxMessageLength = 17 * 1024 * 1024;

const bind = (server: Server, address: string, secure: boolean): Promise<number> =>
  new Promise((resolve, reject) => {
    const credentials = secure
      ? ServerCredentials.createSsl(
          null,
          [
            {
              private_key: readFileSync(path.join(tlsFolder, 'key.pem')),
              cert_chain: readFileSync(testServerCertificate),
            },
          ],
          false,
        )
      : ServerCredentials.createInsecure();
    server.bindAsync(address, credentials, (error, port) => (error ? reject(error) : resolve(port)));
  });

export const startEventStoreDbTestServer = async (
  options: EventStoreDbTestServerOptions = {},
): Promise<EventStoreDbTestServer> => {
  const host = options.host ?? '127.0.0.1';
  const secure = options.secure ?? false;
  const store = new InMemoryEventStore({ ...options, enforceAcl: options.enforceAcl ?? secure });
  const calls = new CallRegistry();
  let writeDelayMs = 0;
  const delayedWrites = { inFlight: 0 };
  const appendDependencies = {
    store,
    writeTimeoutMs: options.writeTimeoutMs ?? 2_000,
    writeDelayMs: () => writeDelayMs,
    delayedWrites,
  };
  const callCounts: Record<string, number> = {};
  let allEventsSent = 0;
  const counted = <Handler extends (...args: never[]) => void>(method: string, handler: Handler) =>
    ((...args: Parameters<Handler>) => {
      callCounts[method] = (callCounts[method] ?? 0) + 1;
      (secure ? authenticated(handler) : handler)(...args);
    }) as Handler;
  const streams: UntypedServiceImplementation = {
    read: counted(
      'read',
      createReadHandler({
        store,
        calls,
        allEventSent: () => {
          allEventsSent += 1;
        },
      }),
    ),
    append: counted('append', createAppendHandler(appendDependencies)),
    batchAppend: counted('batchAppend', createBatchAppendHandler(appendDependencies)),
    delete: counted('delete', createDeleteHandler(store)),
    tombstone: counted('tombstone', createTombstoneHandler(store)),
  };
  const features = createServerFeaturesService(options.serverVersion ?? '24.10.0');
  const serverFeatures: UntypedServiceImplementation = {
    getSupportedMethods: counted('getSupportedMethods', features.getSupportedMethods),
  };

  const grpcServer = new Server({
    'grpc.max_receive_message_length': maxMessageLength,
    'grpc.max_send_message_length': maxMessageLength,
  });
  grpcServer.addService(streamsGrpc.StreamsService, streams);
  grpcServer.addService(serverFeaturesGrpc.ServerFeaturesService, serverFeatures);
  const internalPort = await bind(grpcServer, '127.0.0.1:0', secure);

  // Clients connect through a TCP relay, so "down" can look like a real outage: the port refuses
  // connections and open ones are cut without any gRPC goodbye, while the data stays in memory.
  const sockets = new Set<Socket>();
  const relay = createServer((downstream) => {
    const upstream = connect(internalPort, '127.0.0.1');
    const cut = () => {
      downstream.destroy();
      upstream.destroy();
      sockets.delete(downstream);
      sockets.delete(upstream);
    };
    for (const socket of [downstream, upstream]) {
      // As the endpoints do: Nagle's algorithm in the middle would hold a short message back until
      // the previous one is acknowledged, which a delayed acknowledgement puts off by up to 40 ms.
      socket.setNoDelay(true);
      sockets.add(socket);
      socket.on('error', cut);
      socket.on('close', cut);
    }
    downstream.pipe(upstream).pipe(downstream);
  });
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      relay.once('error', reject);
      relay.listen(port, host, () => {
        relay.off('error', reject);
        resolve((relay.address() as AddressInfo).port);
      });
    });
  const port = await listen(options.port ?? 0);
  let up = true;

  const goDown = async () => {
    if (!up) return;
    up = false;
    const closed = new Promise((resolve) => relay.close(resolve));
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    await closed;
  };

  return {
    url: secure
      ? `esdb://${host}:${port}?tls=true&tlsCAFile=${encodeURIComponent(testServerCertificate)}`
      : `esdb://${host}:${port}?tls=false`,
    port,
    store,
    get isUp() {
      return up;
    },
    goDown,
    comeBack: async () => {
      if (up) return;
      await listen(port);
      up = true;
    },
    dropSubscriptions: () => calls.dropAll(() => rpcExceptions.serverNotReady()),
    setWriteDelay: (ms: number) => {
      writeDelayMs = ms;
    },
    get delayedWritesInFlight() {
      return delayedWrites.inFlight;
    },
    callCounts,
    get allEventsSent() {
      return allEventsSent;
    },
    stop: async () => {
      await goDown();
      calls.dropAll(() => rpcExceptions.serverNotReady());
      grpcServer.forceShutdown();
    },
  };
};
