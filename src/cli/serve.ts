/**
 * `calltrail serve`: ingest (and, by default, the projector) in one process.
 *
 * Start-up: configuration, stores (the embedded default starts its own PostgreSQL), projector, the
 * outage journal (taking over any left by a process that is gone), HTTP.
 * Shutdown on SIGINT/SIGTERM, in reverse: stop accepting and let in-flight requests finish, stop the
 * projector after its batch, close the stores, stop the embedded PostgreSQL, exit 0.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { buildApp } from '../app.ts';
import { createLogger, type Logger } from '../logger.ts';
import { createMetrics } from '../metrics.ts';
import { openOutageJournal } from '../journal/outage-journal.ts';
import { startProjector } from '../projector/projector.ts';
import { startForwarding } from '../forwarding/forwarding-setup.ts';
import { resolveSigningKey, startSealing } from '../sealing/sealing-setup.ts';
import { openStores } from '../stores/open.ts';
import { reportConnectedRole } from '../stores/runtime-role.ts';
import { planStores } from '../stores/plan.ts';
import { listen, trapShutdownSignals } from '../server.ts';
import { createArchiveWriter } from '../webhook/ingest.ts';
import { loadConfigOrReport, oneLine } from './command-setup.ts';
import { connectionInstructions, defaultPublicUrl, hasWebhookAuthentication } from './credentials.ts';
import { applyHeapSizing } from '../heap-sizing.ts';

/** Past this, shutdown gives up waiting and exits non-zero. */
const shutdownTimeoutMs = 30_000;

const missingWebhookAuthentication =
  'no webhook authentication configured: set CALLTRAIL_WEBHOOK_SECRET (signed requests) or ' +
  'CALLTRAIL_WEBHOOK_TOKEN (token in the URL), or CALLTRAIL_INSECURE_WEBHOOKS=true to accept ' +
  'unauthenticated webhooks';

export interface ServeOptions {
  readonly projector: boolean;
  /** Run the sealer in this process; default true. */
  readonly sealer?: boolean;
  /** Run the forwarder in this process (when there are destinations); default true. */
  readonly forwarder?: boolean;
}

/** Runs until a shutdown signal; resolves with the exit code. */
export const serve = async (options: ServeOptions): Promise<number> => {
  const config = loadConfigOrReport();
  if (config === undefined) return 1;
  const logger: Logger = createLogger({ level: config.logLevel });
  // Refused before anything starts; the embedded default generates credentials instead.
  if (!planStores(config).embeddedDefault && !hasWebhookAuthentication(config) && !config.webhook.insecure) {
    process.stderr.write(`calltrail: ${missingWebhookAuthentication}\n`);
    return 1;
  }

  let exitCode = 0;
  let resolveStop: () => void = () => {};
  const stopRequested = new Promise<void>((resolve) => {
    resolveStop = resolve;
  });
  let stopping = false;
  const requestStop = (reason: string, code: number) => {
    if (stopping) return;
    stopping = true;
    exitCode = code;
    logger.info({ reason }, 'shutting down');
    resolveStop();
  };
  // Trapped before anything starts, so a signal during start-up still stops what was started.
  const untrap = trapShutdownSignals(
    (signal) => requestStop(signal, 0),
    (signal) => logger.warn({ signal }, 'second signal: exiting without waiting'),
  );
  // Run in reverse on the way out.
  const teardown: { name: string; run: () => Promise<void> }[] = [];

  const run = async (): Promise<void> => {
    const stores = await openStores(config, logger, {
      embedded: 'exclusive',
      onEmbeddedExit: (reason) => {
        logger.fatal({ reason }, 'the embedded PostgreSQL stopped');
        requestStop('embedded PostgreSQL stopped', 1);
      },
    });
    teardown.push({ name: 'stores', run: () => stores.close() });
    if (stopping) return;
    reportConnectedRole(stores.connectedRole, logger);

    const effective = stores.config;
    if (!hasWebhookAuthentication(effective)) {
      if (!effective.webhook.insecure) throw new Error(missingWebhookAuthentication);
      logger.warn(
        'CALLTRAIL_INSECURE_WEBHOOKS=true and no webhook secret or token: ANYONE who can reach this ' +
          'server can write events into the archive. Use only on a trusted network.',
      );
    }

    const metrics = createMetrics({ collectProcessMetrics: true });
    const clock = () => new Date();
    const projector = options.projector
      ? await startProjector({
          eventStore: stores.eventStore,
          database: stores.database,
          logger: logger.child({ component: 'projector' }),
          metrics,
          clock,
        })
      : undefined;
    if (projector) teardown.push({ name: 'projector', run: () => projector.stop() });
    if (stopping) return;
    const sealer =
      (options.sealer ?? true)
        ? await startSealing(
            effective,
            {
              eventStore: stores.eventStore,
              pool: stores.database.pool,
              logger: logger.child({ component: 'sealer' }),
              embeddedDefault: planStores(config).embeddedDefault,
            },
            (text) => process.stderr.write(text),
          )
        : undefined;
    if (sealer) teardown.push({ name: 'sealer', run: () => sealer.stop() });
    if (stopping) return;
    // Signs the manifests of exports and replays (with or without the sealer in this process).
    const sealingKey = (await resolveSigningKey(effective, planStores(config).embeddedDefault))?.key;
    const forwarder =
      (options.forwarder ?? true)
        ? startForwarding(effective, {
            eventStore: stores.eventStore,
            pool: stores.database.pool,
            logger: logger.child({ component: 'forwarder' }),
            metrics,
          })
        : undefined;
    if (forwarder) teardown.push({ name: 'forwarder', run: () => forwarder.stop() });
    if (stopping) return;

    const outageJournal = await openOutageJournal({
      config: effective,
      writer: createArchiveWriter(stores.eventStore, {
        timeoutMs: effective.appendTimeoutMs,
        rememberedIds: effective.webhook.rememberedEventIds,
      }),
      logger,
      metrics,
    });
    teardown.push({ name: 'outage journal', run: () => outageJournal.close() });
    if (stopping) return;

    const app = await buildApp(
      {
        config: effective,
        eventStore: stores.eventStore,
        database: stores.database,
        metrics,
        clock,
        ...(projector ? { projections: projector } : {}),
        archive: outageJournal.archive,
        ...(sealingKey === undefined ? {} : { sealingKey }),
        ...(forwarder ? { forwarder } : {}),
      },
      { logger },
    );
    teardown.push({ name: 'http server', run: () => app.close() });
    const listening = await listen(app, { host: effective.host, port: effective.port });
    if (stopping) return;

    const publicUrl = defaultPublicUrl(effective, listening.port);
    logger.info(
      {
        address: `${listening.address}:${listening.port}`,
        publicUrl,
        eventStore: stores.locations.eventStore,
        readModels: stores.locations.readModels,
        projector: projector ? 'running in this process' : 'not running (--no-projector)',
        journal: outageJournal.journal.path,
      },
      'calltrail is serving',
    );
    // Generated credentials are shown on the start that generated them only.
    const generated = stores.generatedSecrets;
    process.stderr.write(
      connectionInstructions(effective, generated, publicUrl, generated?.createdNow ?? false),
    );
    await stopRequested;
  };

  try {
    await run();
  } catch (error) {
    logger.debug({ err: error }, 'start-up failed');
    process.stderr.write(`calltrail: could not start: ${oneLine(error)}\n`);
    exitCode = 1;
  } finally {
    const shutdown = new AbortController();
    // Unref'd: it bounds the shutdown without keeping a finished process alive.
    void sleep(shutdownTimeoutMs, undefined, { signal: shutdown.signal, ref: false }).then(
      () => {
        logger.error({ timeoutMs: shutdownTimeoutMs }, 'shutdown took too long; exiting');
        process.exit(1);
      },
      () => {},
    );
    for (const step of teardown.reverse()) {
      try {
        await step.run();
      } catch (error) {
        logger.error({ err: error, step: step.name }, 'error during shutdown');
        exitCode = exitCode === 0 ? 1 : exitCode;
      }
    }
    shutdown.abort();
    untrap();
    if (teardown.length > 0) logger.info('stopped');
  }
  return exitCode;
};

export const registerServeCommand = (program: Command): void => {
  program
    .command('serve')
    .description('receive Flireo webhooks and serve the audit API (and run the projector)')
    .option('--no-projector', 'do not run the projector in this process (run `calltrail project` for it)')
    .option('--no-sealer', 'do not run the sealer in this process (run `calltrail seal` for it)')
    .option('--no-forwarder', 'do not run the forwarder in this process (run `calltrail forward` for it)')
    .action(async (options: { projector: boolean; sealer: boolean; forwarder: boolean }) => {
      // A long-running server: hold its heap near what is live (see heap-sizing.ts).
      applyHeapSizing();
      const code = await serve({
        projector: options.projector,
        sealer: options.sealer,
        forwarder: options.forwarder,
      });
      // Explicit: a library handle left open must not keep a stopped server's process alive.
      process.exit(code);
    });
};
