/**
 * A process the benchmark measures, apart from the load generator: the calltrail app, the no-op
 * route it is compared with, the projector, a raw COPY, the forwarder, or the customer's handler
 * relay mode answers through. Started by `processes.ts` with its role
 * as the first argument (JSON); answers commands over the IPC channel. Apart, because on two cores
 * a load generator sharing the server's event loop would slow it down and flatter its latencies,
 * and because peak memory must be measured in the process that does the work.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Config } from '../src/config.ts';
import type { GlobalPosition } from '../src/event-store/event-store.ts';
import { applyHeapSizing } from '../src/heap-sizing.ts';
import type { ChildCommand, ChildReply, ChildSpec, LiveHeapReport, MemoryReport } from './processes.ts';

// Each role imports only what it uses (below), so a process's memory is its role's, not the sum
// of every role's modules.

const spec = JSON.parse(process.argv[2] ?? '{}') as ChildSpec;

const send = (message: ChildReply): void => {
  process.send?.(message);
};

// Peak RSS: the kernel's high-water mark where there is one, else our own sampling of it (which
// costs the measured process a little CPU, so it runs only where it must).
let sampledPeak = process.memoryUsage.rss();

const kernelPeak = (): number | undefined => {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
};

if (kernelPeak() === undefined) {
  setInterval(() => {
    sampledPeak = Math.max(sampledPeak, process.memoryUsage.rss());
  }, 10).unref();
}

const memory = (): MemoryReport => {
  const rss = process.memoryUsage.rss();
  sampledPeak = Math.max(sampledPeak, rss);
  const peak = kernelPeak();
  return { rss, peakRss: peak ?? sampledPeak, peakSource: peak === undefined ? 'sampled' : 'VmHWM' };
};

/**
 * A full garbage collection, then the memory left: what the process keeps, apart from the garbage
 * V8 lets accumulate before collecting (up to several times the live heap, by its own sizing).
 * Exposed here rather than by `--expose-gc`, so the process runs with production flags until asked.
 */
const liveHeap = (): LiveHeapReport => {
  v8.setFlagsFromString('--expose-gc');
  const collect = vm.runInNewContext('gc') as () => void;
  collect();
  const { heapUsed, heapTotal, rss } = process.memoryUsage();
  return { heapUsed, heapTotal, rss };
};

/** Starts the peak over from the current RSS, so it covers only what follows. */
const resetPeak = (): void => {
  sampledPeak = process.memoryUsage.rss();
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    // Not Linux, or not allowed: the sampled peak, reset above, stands in.
  }
};

/** `defaults`: the production configuration, for everything the benchmark does not set. */
const configFor = (app: Extract<ChildSpec, { role: 'app' }>, defaults: Config): Config => ({
  ...defaults,
  eventStoreUrl: app.eventStoreUrl,
  databaseUrl: app.databaseUrl,
  dataDir: '.',
  host: '127.0.0.1',
  port: 0,
  logLevel: app.logLevel,
  webhook: { ...defaults.webhook, secret: app.webhookSecret },
  journal: { ...defaults.journal, dir: app.journalDir },
  apiTokens: [
    {
      name: 'bench',
      role: 'admin',
      sha256: createHash('sha256').update(app.apiToken).digest('hex'),
      token: app.apiToken,
    },
  ],
});

type Handler = (command: ChildCommand) => Promise<unknown>;

const startApp = async (app: Extract<ChildSpec, { role: 'app' }>): Promise<Handler> => {
  const [
    { buildApp },
    { migrateReadModels, openDatabase },
    { openPostgresEventStore },
    { createLogger },
    { createMetrics },
    { openOutageJournal },
    { createArchiveWriter },
    { loadConfig },
  ] = await Promise.all([
    import('../src/app.ts'),
    import('../src/database/database.ts'),
    import('../src/event-store/postgres/postgres-event-store.ts'),
    import('../src/logger.ts'),
    import('../src/metrics.ts'),
    import('../src/journal/outage-journal.ts'),
    import('../src/webhook/ingest.ts'),
    import('../src/config.ts'),
  ]);
  const logger = createLogger({ level: app.logLevel });
  const config = configFor(
    app,
    loadConfig(
      app.relayUrl === undefined
        ? {}
        : // Relay mode forwards the other events too, which needs the secret; this process runs no forwarder.
          {
            CALLTRAIL_RELAY_URL: app.relayUrl,
            CALLTRAIL_FORWARD_SECRET: 'bench-forwarding-secret-0123456789',
          },
    ),
  );
  const eventStore = await openPostgresEventStore(app.eventStoreUrl, {
    timeoutMs: config.appendTimeoutMs,
    logger: logger.child({ component: 'event-store' }),
  });
  const database = openDatabase(app.databaseUrl);
  await migrateReadModels(database);
  const metrics = createMetrics({ collectProcessMetrics: true });
  const outageJournal =
    app.journalDir === undefined
      ? undefined
      : await openOutageJournal({
          config,
          writer: createArchiveWriter(eventStore, {
            timeoutMs: config.appendTimeoutMs,
            rememberedIds: config.webhook.rememberedEventIds,
          }),
          logger,
          metrics,
        });
  const server = await buildApp(
    {
      config,
      eventStore,
      database,
      metrics,
      clock: () => new Date(),
      ...(outageJournal ? { archive: outageJournal.archive } : {}),
    },
    { logger },
  );
  // As `calltrail serve` seals: in this process, beside ingest (paused until asked to resume).
  const sealer =
    app.sealer === undefined
      ? undefined
      : await sealerControl(eventStore, database.pool, app.logLevel, app.sealer.maxSeconds, true);
  await server.listen({ host: '127.0.0.1', port: 0 });
  const address = server.server.address();
  send({ kind: 'ready', port: typeof address === 'object' && address ? address.port : 0 });
  return async (command) => {
    const sealing = await sealer?.(command);
    if (sealing?.handled === true) return sealing.result;
    if (command.command === 'exit') {
      await server.close();
      await outageJournal?.close();
      await eventStore.close();
      await database.close();
    }
    return undefined;
  };
};

/** The ceiling for ingest: Fastify, the same logger and body schema, and nothing else. */
const startNoop = async (noop: Extract<ChildSpec, { role: 'noop' }>): Promise<Handler> => {
  const [
    { TypeBoxValidatorCompiler },
    { default: Fastify },
    { default: Type },
    { FlireoEventBody },
    { createLogger },
  ] = await Promise.all([
    import('@fastify/type-provider-typebox'),
    import('fastify'),
    import('typebox'),
    import('../src/flireo/schemas.ts'),
    import('../src/logger.ts'),
  ]);
  const Accepted = Type.Object({ eventId: Type.String(), stream: Type.String(), duplicate: Type.Boolean() });
  const server = Fastify({
    loggerInstance: createLogger({ level: noop.logLevel }),
    bodyLimit: 1_048_576,
  }).withTypeProvider<import('@fastify/type-provider-typebox').TypeBoxTypeProvider>();
  server.setValidatorCompiler(TypeBoxValidatorCompiler);
  server.post(
    '/webhooks/flireo',
    { schema: { body: FlireoEventBody, response: { 202: Accepted } } },
    async (_request, reply) =>
      reply
        .code(202)
        .send({ eventId: '00000000-0000-8000-8000-000000000000', stream: 'noop', duplicate: false }),
  );
  await server.listen({ host: '127.0.0.1', port: 0 });
  const address = server.server.address();
  send({ kind: 'ready', port: typeof address === 'object' && address ? address.port : 0 });
  return async (command) => {
    if (command.command === 'exit') await server.close();
    return undefined;
  };
};

const startProjectorRole = async (projector: Extract<ChildSpec, { role: 'projector' }>): Promise<Handler> => {
  const [
    { callStreamPrefix },
    { migrateReadModels, openDatabase },
    { comparePositions },
    { openPostgresEventStore },
    { createLogger },
    { createMetrics },
    { readHead },
    { startProjector },
    { projectionNames },
  ] = await Promise.all([
    import('../src/archive/streams.ts'),
    import('../src/database/database.ts'),
    import('../src/event-store/event-store.ts'),
    import('../src/event-store/postgres/postgres-event-store.ts'),
    import('../src/logger.ts'),
    import('../src/metrics.ts'),
    import('../src/projector/lag.ts'),
    import('../src/projector/projector.ts'),
    import('../projections/registry.ts'),
  ]);
  const logger = createLogger({ level: projector.logLevel });
  const eventStore = await openPostgresEventStore(projector.eventStoreUrl, { timeoutMs: 30_000 });
  const database = openDatabase(projector.databaseUrl);
  await migrateReadModels(database);
  send({ kind: 'ready', port: 0 });
  return async (command) => {
    if (command.command === 'exit') {
      await eventStore.close();
      await database.close();
      return undefined;
    }
    if (command.command !== 'catch-up') return undefined;
    const head = await readHead(eventStore, [callStreamPrefix]);
    if (head === undefined) throw new Error('the event store is empty');
    const started = performance.now();
    const running = await startProjector({
      eventStore,
      database,
      logger,
      metrics: createMetrics(),
      clock: () => new Date(),
    });
    const pending = new Set(projectionNames);
    const finishedAfter: Record<string, number> = {};
    while (pending.size > 0) {
      // One query per look for every projection: this process is the one measured.
      const { rows } = await database.pool.query<{ projection: string; commit: string; prepare: string }>(
        `SELECT projection, commit_position::text AS commit, prepare_position::text AS prepare
           FROM projection_checkpoints WHERE projection = ANY($1::text[])`,
        [[...pending]],
      );
      for (const row of rows) {
        const checkpoint = { commit: BigInt(row.commit), prepare: BigInt(row.prepare) };
        if (comparePositions(checkpoint, head.position) >= 0) {
          pending.delete(row.projection);
          finishedAfter[row.projection] = (performance.now() - started) / 1000;
        }
      }
      if (pending.size > 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const seconds = (performance.now() - started) / 1000;
    await running.stop();
    return { seconds, finishedAfter };
  };
};

const startRawCopy = async (raw: Extract<ChildSpec, { role: 'raw-copy' }>): Promise<Handler> => {
  const [{ Writable }, { pipeline }, { default: pg }, { to: copyTo }] = await Promise.all([
    import('node:stream'),
    import('node:stream/promises'),
    import('pg'),
    import('pg-copy-streams'),
  ]);
  const client = new pg.Client(raw.databaseUrl);
  await client.connect();
  send({ kind: 'ready', port: 0 });
  return async (command) => {
    if (command.command === 'exit') {
      await client.end();
      return undefined;
    }
    if (command.command !== 'copy') return undefined;
    let bytes = 0;
    let lines = 0;
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        bytes += chunk.length;
        for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) lines += 1;
        callback();
      },
    });
    const started = performance.now();
    await pipeline(client.query(copyTo(command.sql)), sink);
    return { seconds: (performance.now() - started) / 1000, bytes, lines };
  };
};

/** The forwarder, delivering to one destination; `catch-up` waits until nothing is pending. */
const startForwarderRole = async (forwarder: Extract<ChildSpec, { role: 'forwarder' }>): Promise<Handler> => {
  const [
    { migrateReadModels, openDatabase },
    { openPostgresEventStore },
    { createLogger },
    { createMetrics },
    { loadConfig },
    { forwarderOptionsFrom },
    { startForwarder },
    { loadForwardingCheckpoint },
  ] = await Promise.all([
    import('../src/database/database.ts'),
    import('../src/event-store/postgres/postgres-event-store.ts'),
    import('../src/logger.ts'),
    import('../src/metrics.ts'),
    import('../src/config.ts'),
    import('../src/forwarding/forwarding-setup.ts'),
    import('../src/forwarding/forwarder.ts'),
    import('../src/forwarding/delivery-store.ts'),
  ]);
  const logger = createLogger({ level: forwarder.logLevel });
  const eventStore = await openPostgresEventStore(forwarder.eventStoreUrl, { timeoutMs: 30_000 });
  const database = openDatabase(forwarder.databaseUrl);
  await migrateReadModels(database);
  const pool = database.pool;
  if (forwarder.fromStart) {
    await pool.query(
      `INSERT INTO forwarding_checkpoints (forwarder, commit_position, prepare_position, updated_at)
       VALUES ('forwarder', 0, 0, now()) ON CONFLICT (forwarder) DO NOTHING`,
    );
  }
  const config = loadConfig({});
  const started = performance.now();
  const running = startForwarder(
    { eventStore, pool, logger, metrics: createMetrics(), clock: () => new Date() },
    {
      ...forwarderOptionsFrom(config.forwarding, [
        { name: 'bench', url: new URL(forwarder.destinationUrl), eventTypes: undefined },
      ]),
      secret: 'bench-forwarding-secret-0123456789',
    },
  );
  // Ready once it leads from a checkpoint, so every event archived after this is forwarded.
  for (;;) {
    if (running.role === 'active' && (await loadForwardingCheckpoint(pool)) !== undefined) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  send({ kind: 'ready', port: 0 });
  return async (command) => {
    if (command.command === 'exit') {
      await running.stop();
      await eventStore.close();
      await database.close();
      return undefined;
    }
    if (command.command !== 'catch-up') return undefined;
    const { rows: expected } = await pool.query<{ events: number }>(
      `SELECT count(*)::int AS events FROM event_store.events
        WHERE stream_name LIKE 'call-%' OR stream_name LIKE 'assistant-requests-%'`,
    );
    for (;;) {
      const { rows } = await pool.query<{ pending: number; delivered: number; finished: number }>(
        `SELECT count(*) FILTER (WHERE status = 'pending')::int AS pending,
                count(*) FILTER (WHERE status = 'delivered')::int AS delivered,
                count(*) FILTER (WHERE status <> 'pending')::int AS finished FROM forwarding_deliveries`,
      );
      if (rows[0]!.finished >= expected[0]!.events && rows[0]!.pending === 0) {
        return { seconds: (performance.now() - started) / 1000, delivered: rows[0]!.delivered };
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
};

/**
 * A sealer with a generated key over `eventStore`, as `calltrail serve` runs it beside ingest, and
 * its commands: `catch-up` waits until the last digest covers the archive's newest event; `pause`
 * stops sealing and `resume` starts it again, so a comparison can alternate without the cost of a
 * new process each time. Started paused when `paused`.
 */
const sealerControl = async (
  eventStore: import('../src/event-store/event-store.ts').EventStore,
  pool: import('pg').Pool,
  logLevel: string,
  maxSeconds: number,
  paused: boolean,
) => {
  const [
    { createLogger },
    { loadConfig },
    { sealerOptionsFrom },
    { startSealer },
    { generateSigningKey },
    { sealedStreamPrefixes },
    { comparePositions, parsePosition },
  ] = await Promise.all([
    import('../src/logger.ts'),
    import('../src/config.ts'),
    import('../src/sealing/sealing-setup.ts'),
    import('../src/sealing/sealer.ts'),
    import('../src/sealing/signing-key.ts'),
    import('../src/archive/streams.ts'),
    import('../src/event-store/event-store.ts'),
  ]);
  const key = generateSigningKey();
  const logger = createLogger({ level: logLevel });
  const options = { ...sealerOptionsFrom(loadConfig({})), maxSeconds };
  const start = async () => {
    const started = startSealer({ eventStore, pool, key, logger, clock: () => new Date() }, options);
    const deadline = Date.now() + 30_000;
    while (started.role !== 'active') {
      if (Date.now() > deadline) throw new Error('the sealer did not become active in time');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return started;
  };
  let running: Awaited<ReturnType<typeof start>> | undefined = paused ? undefined : await start();

  const catchUp = async (sealing: NonNullable<typeof running>) => {
    let head: GlobalPosition | undefined;
    for await (const event of eventStore.readAll({
      streamPrefixes: sealedStreamPrefixes,
      direction: 'backwards',
      maxCount: 1,
    })) {
      head = event.position;
    }
    const sealedThrough = () => {
      const last = sealing.lastDigest?.lastPosition;
      return last === undefined ? undefined : parsePosition(last);
    };
    const deadline = Date.now() + 120_000;
    for (;;) {
      const sealed = sealedThrough();
      if (head === undefined || (sealed !== undefined && comparePositions(sealed, head) >= 0)) break;
      if (Date.now() > deadline) throw new Error('the sealer did not seal the archive in time');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return { sequence: sealing.lastDigest?.sequence };
  };

  /** Answers the sealer's commands; `handled: false` for any other, and for `exit` (the caller ends the rest). */
  return async (command: ChildCommand): Promise<{ handled: boolean; result?: unknown }> => {
    if (command.command === 'exit') {
      await running?.stop();
      return { handled: false };
    }
    if (command.command === 'pause') {
      await running?.stop();
      running = undefined;
      return { handled: true };
    }
    if (command.command === 'resume') {
      running ??= await start();
      return { handled: true };
    }
    if (command.command !== 'catch-up') return { handled: false };
    if (running === undefined) throw new Error('the sealer is paused');
    return { handled: true, result: await catchUp(running) };
  };
};

/** The sealer alone in a process of its own, as `calltrail seal` runs it. */
const startSealerRole = async (sealer: Extract<ChildSpec, { role: 'sealer' }>): Promise<Handler> => {
  const [{ default: pg }, { openPostgresEventStore }] = await Promise.all([
    import('pg'),
    import('../src/event-store/postgres/postgres-event-store.ts'),
  ]);
  const eventStore = await openPostgresEventStore(sealer.eventStoreUrl, { timeoutMs: 30_000 });
  const pool = new pg.Pool({ connectionString: sealer.eventStoreUrl, max: 2 });
  pool.on('error', () => {});
  const control = await sealerControl(eventStore, pool, sealer.logLevel, sealer.maxSeconds, false);
  send({ kind: 'ready', port: 0 });
  return async (command) => {
    const { result } = await control(command);
    if (command.command === 'exit') {
      await eventStore.close();
      await pool.end();
    }
    return result;
  };
};

/** The customer's handler: `requests` answers how many it has answered. */
const startToolHandlerRole = async (): Promise<Handler> => {
  const { startToolHandler } = await import('./tool-handler.ts');
  const handler = await startToolHandler();
  send({ kind: 'ready', port: handler.port });
  return async (command) => {
    if (command.command === 'exit') await handler.close();
    if (command.command === 'requests') return handler.requests();
    return undefined;
  };
};

const startRelayFloorRole = async (floor: Extract<ChildSpec, { role: 'relay-floor' }>): Promise<Handler> => {
  const { startRelayFloor } = await import('./relay-floor.ts');
  const relay = await startRelayFloor(floor);
  send({ kind: 'ready', port: relay.port });
  return async (command) => {
    if (command.command === 'exit') await relay.close();
    return undefined;
  };
};

/** The customer's server: `arrivals` answers when each event id first arrived, `requests` how many came. */
const startEventReceiverRole = async (): Promise<Handler> => {
  const { startEventReceiver } = await import('./event-receiver.ts');
  const receiver = await startEventReceiver();
  send({ kind: 'ready', port: receiver.port });
  return async (command) => {
    if (command.command === 'exit') await receiver.close();
    if (command.command === 'arrivals') return receiver.arrivals();
    if (command.command === 'requests') return receiver.requests();
    return undefined;
  };
};

const start = (): Promise<Handler> => {
  switch (spec.role) {
    case 'app':
      // Serve's heap sizing, as `calltrail serve` sets it (see heap-sizing.ts).
      applyHeapSizing();
      return startApp(spec);
    case 'noop':
      return startNoop(spec);
    case 'projector':
      return startProjectorRole(spec);
    case 'raw-copy':
      return startRawCopy(spec);
    case 'forwarder':
      return startForwarderRole(spec);
    case 'tool-handler':
      return startToolHandlerRole();
    case 'relay-floor':
      return startRelayFloorRole(spec);
    case 'event-receiver':
      return startEventReceiverRole();
    case 'sealer':
      return startSealerRole(spec);
    default: {
      const unknown: never = spec;
      throw new Error(`unknown role ${JSON.stringify(unknown)}`);
    }
  }
};

const describe = (error: unknown): string =>
  error instanceof Error ? (error.stack ?? error.message) : String(error);

try {
  const handle = await start();
  process.on('message', (message: ChildCommand) => {
    const reply = async (): Promise<unknown> => {
      if (message.command === 'memory') return memory();
      if (message.command === 'live-heap') return liveHeap();
      if (message.command === 'reset-peak') {
        resetPeak();
        return memory();
      }
      return handle(message);
    };
    reply().then(
      (result) => {
        send({ kind: 'reply', id: message.id, ok: true, result });
        // Exiting through process.exit lets `--cpu-prof` write its profile.
        if (message.command === 'exit') setImmediate(() => process.exit(0));
      },
      (error: unknown) => send({ kind: 'reply', id: message.id, ok: false, error: describe(error) }),
    );
  });
} catch (error) {
  send({ kind: 'failed', error: describe(error) });
  process.exit(1);
}
