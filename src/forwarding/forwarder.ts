/**
 * The forwarder: delivers every archived event onward to the destinations that want its type, at
 * least once, in archive order per call, with retries, and records every attempt.
 *
 * Two loops run while this process holds the forwarder's leader lock (a PostgreSQL session advisory
 * lock, as the projector and the sealer do it: other processes stand by and take over when the
 * session ends):
 * - the recorder follows the archive's global order from its own checkpoint and records, per event
 *   and destination wanting it, a pending delivery, in the same statement as the checkpoint, on the
 *   session holding the lock, so no two forwarders record;
 * - the dispatcher attempts due deliveries, at most `concurrency` at once, and of each call (stream)
 *   per destination only the earliest pending one, so a call's events arrive in order while a
 *   failing call holds up no other. It records outcomes on pooled connections, side by side; each
 *   write names the attempt it follows, so an outcome never lands twice.
 *
 * A delivery is marked delivered only after its 2xx came back, so a forwarder killed mid-attempt
 * sends that delivery again after a restart (the receiver deduplicates by `X-Calltrail-Event-Id`);
 * nothing recorded is skipped, and the checkpoint moves only with the deliveries it covers.
 */
import type pg from 'pg';
import type { Dispatcher } from 'undici';
import type { EventStore, GlobalPosition, RecordedEvent } from '../event-store/event-store.ts';
import { formatPosition } from '../event-store/event-store.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { feedBatch, openFeed } from '../projector/feed.ts';
import {
  attemptDelivery,
  createDeliveryAgent,
  payloadOf,
  type AttemptResult,
  type Payload,
} from './delivery-request.ts';
import {
  destinationAnswered,
  destinationFailed,
  ensureDestinations,
  failUnattemptable,
  loadDestinationStates,
  loadForwardingCheckpoint,
  nextDueAt,
  postpone,
  cancelRemovedDestinations,
  createOutcomeWriter,
  removedDestinationReason,
  recordDeliveries,
  scheduleNextProbe,
  selectDue,
  type DestinationState,
  type DeliveryToRecord,
  type DueDelivery,
  type Queryable,
  limited,
  serialized,
} from './delivery-store.ts';
import { wants, type Destination } from './destinations.ts';
import { isRetryable, judgeAttempt, type RetrySchedule } from './retry-policy.ts';

export interface ForwarderOptions {
  readonly destinations: readonly Destination[];
  readonly secret: string;
  readonly retry: RetrySchedule;
  /** Bound on one attempt, connecting and reading the answer included. */
  readonly timeoutMs: number;
  /** Attempts in flight at once, over every destination. */
  readonly concurrency: number;
  /** Retryable failures in a row after which a destination is paused and probed. */
  readonly pauseAfterFailures: number;
  readonly probeIntervalMs: number;
  /** How much of a response body is read and recorded. */
  readonly excerptBytes: number;
  /** Which streams are forwarded. */
  readonly streamPrefixes: readonly string[];
  readonly maxBatchEvents: number;
  /** How often due deliveries are looked for when nothing wakes the dispatcher. */
  readonly pollIntervalMs: number;
  readonly standbyPollMs: number;
  /** Backoff of the forwarder itself after a failure (store, database). */
  readonly restartInitialMs: number;
  readonly restartMaxMs: number;
  /** Raw bodies kept in memory between recording and delivery, so most need no read from the store. */
  readonly payloadCacheBytes: number;
}

export interface ForwarderDependencies {
  readonly eventStore: EventStore;
  readonly pool: pg.Pool;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly clock: () => Date;
  readonly random?: () => number;
}

export type ForwarderRole = 'starting' | 'standby' | 'active' | 'stopped';

export interface RunningForwarder {
  readonly role: ForwarderRole;
  /** Looks for due deliveries now (after an operator's retry or resume). */
  wake(): void;
  stop(): Promise<void>;
}

/** Lock key (class, hashtext('forwarder')): the projector's family, after the sealer's. */
const forwarderLockClass = 0x43_54_11;

const checkpointOnlyWriteMs = 1_000;
/** Pooled connections the dispatcher uses at most at once. */
const dispatcherConnections = 3;
const storeReadRetryMs = 1_000;
/** Deliveries of one call a look brings along after the head, sent one after the other. */
const followingPerCall = 16;
/** Attempt outcomes written in one statement at most. */
const outcomeBatchMax = 500;

/** Payloads by event id, oldest evicted first past the byte limit. */
const createPayloadCache = (limitBytes: number) => {
  const entries = new Map<string, Payload>();
  let bytes = 0;
  return {
    get: (eventId: string) => entries.get(eventId),
    put: (payload: Payload) => {
      if (payload.body.length > limitBytes || entries.has(payload.eventId)) return;
      entries.set(payload.eventId, payload);
      bytes += payload.body.length;
      for (const [eventId, oldest] of entries) {
        if (bytes <= limitBytes) break;
        entries.delete(eventId);
        bytes -= oldest.body.length;
      }
    },
  };
};

const callIdOf = (event: RecordedEvent): string | null => {
  const data = event.data;
  const callId =
    typeof data === 'object' && data !== null ? (data as Record<string, unknown>)['callId'] : undefined;
  return typeof callId === 'string' ? callId : null;
};

const asError = (error: unknown): Error =>
  error instanceof Error ? error : new Error(String(error), { cause: error });

export const startForwarder = (
  dependencies: ForwarderDependencies,
  options: ForwarderOptions,
): RunningForwarder => {
  const { eventStore, pool, logger, metrics, clock } = dependencies;
  const random = dependencies.random ?? Math.random;
  const destinations = new Map(options.destinations.map((destination) => [destination.name, destination]));
  const names = [...destinations.keys()];
  const cache = createPayloadCache(options.payloadCacheBytes);
  const agent: Dispatcher = createDeliveryAgent({
    timeoutMs: options.timeoutMs,
    connections: options.concurrency,
  });
  let role: ForwarderRole = 'starting';
  let stopping = false;
  let halt: AbortController | undefined;
  let wakeDispatcher: (() => void) | undefined;
  /**
   * A wake-up that came while the dispatcher was busy (looking for due deliveries, say), so its next
   * sleep ends at once: a wake-up is never lost for a poll interval.
   */
  let wokenWhileBusy = false;
  /** The destinations' states are read again before the next look for due deliveries. */
  let statesStale = true;
  let wakeStandby: (() => void) | undefined;

  const wake = () => {
    const wakeUp = wakeDispatcher;
    wakeDispatcher = undefined;
    if (wakeUp === undefined) wokenWhileBusy = true;
    else wakeUp();
  };

  const pause = (ms: number, signal?: AbortSignal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
      wakeStandby = done;
    });

  const storeHead = async (): Promise<GlobalPosition | undefined> => {
    for await (const event of eventStore.readAll({
      streamPrefixes: 'every-stream',
      direction: 'backwards',
      maxCount: 1,
    })) {
      return event.position;
    }
    return undefined;
  };

  /**
   * Pending deliveries to destinations no longer configured are cancelled (kept in the log, never
   * deleted): at the start of each lead, and with each reload of the destinations' states, so one
   * an operator retries while its destination is still gone does not wait forever either.
   */
  const cancelRemoved = async (session: Queryable): Promise<void> => {
    const cancelled = await cancelRemovedDestinations(session, names, clock());
    for (const [destination, count] of cancelled) {
      metrics.forwardingDeliveries.inc({ destination, outcome: 'cancelled' }, count);
      logger.warn(
        { destination, cancelled: count, reason: removedDestinationReason },
        'pending deliveries to a destination no longer configured cancelled; "recover" resends them once it is back',
      );
    }
  };

  /** Follows the archive and records deliveries until halted; throws on failure. */
  const record = async (session: Queryable, signal: AbortSignal): Promise<void> => {
    let start = await loadForwardingCheckpoint(session);
    if (start === undefined) {
      // First run: forwarding starts with what is archived from now on, not the whole history.
      start = await storeHead();
      if (start !== undefined) await recordDeliveries(session, [], start, clock());
      logger.info({ after: start === undefined ? 'start' : formatPosition(start) }, 'forwarding starts');
    }
    const feed = openFeed(
      eventStore.subscribeToAll({ after: start, streamPrefixes: options.streamPrefixes }),
      {
        highWater: options.maxBatchEvents * 2,
        start,
        now: () => clock().getTime(),
      },
    );
    const close = () => void feed.close();
    signal.addEventListener('abort', close, { once: true });
    let lastWrite = 0;
    try {
      while (!signal.aborted) {
        const messages = await feed.take(options.maxBatchEvents);
        if (messages.length === 0) return;
        const { events, through } = feedBatch(messages);
        if (through === undefined) continue;
        if (events.length === 0 && clock().getTime() - lastWrite < checkpointOnlyWriteMs) continue;
        const deliveries: DeliveryToRecord[] = [];
        for (const event of events) {
          const callId = callIdOf(event);
          for (const destination of options.destinations) {
            if (wants(destination, event.type))
              deliveries.push({ destination: destination.name, event, callId });
          }
        }
        const recorded = await recordDeliveries(session, deliveries, through, clock());
        lastWrite = clock().getTime();
        for (const [destination, count] of recorded) {
          metrics.forwardingDeliveries.inc({ destination, outcome: 'recorded' }, count);
        }
        if (deliveries.length > 0) {
          for (const event of events) {
            const payload = payloadOf(event);
            if (payload !== undefined) cache.put(payload);
          }
          wake();
        }
      }
    } finally {
      signal.removeEventListener('abort', close);
      await feed.close();
    }
  };

  const readEvent = async (delivery: DueDelivery): Promise<RecordedEvent | undefined> => {
    for await (const event of eventStore.readStream(delivery.streamName, {
      fromRevision: delivery.streamRevision,
      maxCount: 1,
    })) {
      return event.id === delivery.eventId ? event : undefined;
    }
    return undefined;
  };

  /** Attempts due deliveries until halted; throws when recording an outcome fails. */
  const dispatch = async (signal: AbortSignal): Promise<void> => {
    const session = limited(pool, dispatcherConnections);
    const outcomes = createOutcomeWriter(session, outcomeBatchMax);
    const inFlight = new Set<Promise<void>>();
    const busy = new Set<string>();
    /**
     * The deliveries whose attempt ended while a look for due deliveries ran: what the look found of
     * them may predate the attempt's record (still pending, due at once), so they wait for the next look.
     */
    let endedDuringLook: Set<string> | undefined;
    let states = new Map<string, DestinationState>();
    let statesLoadedAt = 0;
    let failure: unknown;

    /** Attempts one delivery and records the outcome; says what became of it. */
    const attempt = async (
      delivery: DueDelivery,
      destination: Destination,
    ): Promise<'delivered' | 'failed' | 'retry'> => {
      let payload = cache.get(delivery.eventId);
      if (payload === undefined) {
        let event: RecordedEvent | undefined;
        try {
          event = await readEvent(delivery);
        } catch (error) {
          logger.warn(
            { err: error, stream: delivery.streamName },
            'could not read an event to forward; retrying',
          );
          await postpone(session, delivery.id, new Date(clock().getTime() + storeReadRetryMs));
          return 'retry';
        }
        payload = event === undefined ? undefined : payloadOf(event);
        if (payload === undefined) {
          const why =
            event === undefined ? 'the event is no longer in the archive' : 'the record has no raw body';
          await failUnattemptable(session, delivery.id, why, clock());
          metrics.forwardingDeliveries.inc({ destination: destination.name, outcome: 'failed' });
          logger.warn({ destination: destination.name, eventId: delivery.eventId, why }, 'delivery failed');
          return 'failed';
        }
      }
      const number = delivery.attempts + 1;
      const attemptedAt = clock();
      const result: AttemptResult = await attemptDelivery(destination.url, payload, {
        agent,
        attempt: number,
        secret: options.secret,
        timeoutMs: options.timeoutMs,
        excerptBytes: options.excerptBytes,
        now: clock,
      });
      const now = clock();
      const verdict = judgeAttempt(result, number - delivery.roundStart, options.retry, now, random);
      const error =
        result.error ??
        (verdict.outcome === 'delivered' || result.status === undefined
          ? undefined
          : `HTTP ${result.status}`);
      await outcomes.write({
        attempt: {
          deliveryId: delivery.id,
          attempt: number,
          destination: destination.name,
          attemptedAt,
          status: result.status,
          latencyMs: result.latencyMs,
          error,
          response: result.response,
        },
        next:
          verdict.outcome === 'retry'
            ? { status: 'pending', nextAttemptAt: verdict.nextAttemptAt, finishedAt: undefined }
            : { status: verdict.outcome, nextAttemptAt: now, finishedAt: now },
      });
      const labels = { destination: destination.name };
      metrics.forwardingAttemptSeconds.observe(labels, result.latencyMs / 1000);
      metrics.forwardingAttempts.inc({ ...labels, outcome: verdict.outcome });
      if (verdict.outcome !== 'retry')
        metrics.forwardingDeliveries.inc({ ...labels, outcome: verdict.outcome });
      if (verdict.outcome === 'failed') {
        logger.warn(
          {
            destination: destination.name,
            eventId: delivery.eventId,
            status: result.status,
            error,
            reason: verdict.reason,
          },
          'delivery failed',
        );
      }
      const state = states.get(destination.name);
      if (!isRetryable(result.status)) {
        if (state === undefined || state.consecutiveFailures > 0 || state.pausedReason === 'failing') {
          statesStale = true;
          if (await destinationAnswered(session, destination.name)) {
            logger.info({ destination: destination.name }, 'destination answers again; resumed');
          }
        }
      } else {
        statesStale = true;
        const probeAt = new Date(now.getTime() + options.probeIntervalMs);
        if (await destinationFailed(session, destination.name, options.pauseAfterFailures, probeAt, now)) {
          logger.warn(
            { destination: destination.name, failures: options.pauseAfterFailures },
            'destination keeps failing; paused, probing it every probe interval',
          );
        }
      }
      return verdict.outcome;
    };

    /**
     * Attempts a delivery, then, while each is delivered or failed, the ones that follow it in its
     * call (as the look found them), keeping the call busy throughout: a call's events go one after
     * the other without waiting for another look. A retry, a pause or a halt ends the run.
     */
    const launch = (first: DueDelivery, destination: Destination) => {
      const key = `${first.destination}\u0000${first.streamName}`;
      busy.add(key);
      const run = async () => {
        let delivery = first;
        let following = first.following;
        for (;;) {
          const outcome = await attempt(delivery, destination);
          endedDuringLook?.add(delivery.id);
          const next = following[0];
          if (
            next === undefined ||
            outcome === 'retry' ||
            signal.aborted ||
            (states.get(destination.name)?.pausedReason ?? null) !== null ||
            next.nextAttemptAt.getTime() > clock().getTime()
          )
            return;
          delivery = next;
          following = following.slice(1);
        }
      };
      const running: Promise<void> = run()
        .catch((error: unknown) => {
          failure ??= error;
          halt?.abort();
        })
        .finally(() => {
          busy.delete(key);
          inFlight.delete(running);
          wake();
        });
      inFlight.add(running);
    };

    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        if (wokenWhileBusy) {
          wokenWhileBusy = false;
          return resolve();
        }
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          wakeDispatcher = undefined;
          resolve();
        };
        const timer = setTimeout(done, Math.max(0, ms));
        signal.addEventListener('abort', done, { once: true });
        wakeDispatcher = done;
      });

    try {
      while (!signal.aborted) {
        // What woke it until now, this look sees.
        wokenWhileBusy = false;
        const now = clock();
        if (statesStale || now.getTime() - statesLoadedAt >= options.pollIntervalMs) {
          statesStale = false;
          statesLoadedAt = now.getTime();
          states = await loadDestinationStates(session, names);
          await cancelRemoved(session);
        }
        const eligible: string[] = [];
        const probing = new Set<string>();
        for (const name of names) {
          const state = states.get(name);
          if (state === undefined || state.pausedReason === null) eligible.push(name);
          else if (
            state.pausedReason === 'failing' &&
            (state.probeAt === null || state.probeAt.getTime() <= now.getTime()) &&
            ![...busy].some((key) => key.startsWith(`${name}\u0000`))
          ) {
            eligible.push(name);
            probing.add(name);
          }
        }
        let launched = 0;
        const free = options.concurrency - inFlight.size;
        // Completions are gathered into one look for due deliveries rather than one look each.
        const worthLooking = inFlight.size === 0 || free >= Math.max(1, Math.floor(options.concurrency / 4));
        if (worthLooking && eligible.length > 0) {
          const ended = new Set<string>();
          endedDuringLook = ended;
          let due;
          try {
            due = await selectDue(session, eligible, now, free + busy.size, followingPerCall);
          } finally {
            endedDuringLook = undefined;
          }
          for (const delivery of due) {
            if (inFlight.size >= options.concurrency || signal.aborted) break;
            if (ended.has(delivery.id)) continue;
            const destination = destinations.get(delivery.destination);
            if (destination === undefined) continue;
            if (busy.has(`${delivery.destination}\u0000${delivery.streamName}`)) continue;
            if (probing.has(delivery.destination)) {
              probing.delete(delivery.destination);
              await scheduleNextProbe(
                session,
                delivery.destination,
                new Date(now.getTime() + options.probeIntervalMs),
              );
              logger.info({ destination: delivery.destination }, 'probing a paused destination');
            } else if (states.get(delivery.destination)?.pausedReason === 'failing') {
              continue;
            }
            launch(delivery, destination);
            launched += 1;
          }
        }
        if (signal.aborted) break;
        if (launched > 0) continue;
        if (inFlight.size > 0) {
          await sleep(options.pollIntervalMs);
          continue;
        }
        const next = await nextDueAt(session, eligible);
        const untilDue = next === undefined ? options.pollIntervalMs : next.getTime() - clock().getTime();
        await sleep(Math.min(options.pollIntervalMs, Math.max(untilDue, 10)));
      }
    } finally {
      // Attempts in flight finish (each bounded by the timeout) and are recorded when they can be.
      await Promise.allSettled([...inFlight]);
    }
    if (failure !== undefined) throw asError(failure);
  };

  /** Leads until halted: both loops; the first failure halts the other. */
  const lead = async (session: Queryable): Promise<void> => {
    const current = new AbortController();
    halt = current;
    if (stopping) return;
    await ensureDestinations(session, names);
    await cancelRemoved(session);
    let failure: unknown;
    const guard = (work: Promise<void>) =>
      work.catch((error: unknown) => {
        failure ??= error;
        current.abort();
      });
    await Promise.all([
      guard(record(session, current.signal)).finally(() => current.abort()),
      guard(dispatch(current.signal)),
    ]);
    halt = undefined;
    if (failure !== undefined && !stopping) throw asError(failure);
  };

  const run = async () => {
    let retryMs = options.restartInitialMs;
    const onSessionError = (error: Error) => logger.warn({ err: error }, 'forwarder database session lost');
    while (!stopping) {
      let session: pg.PoolClient | undefined;
      try {
        session = await pool.connect();
        session.on('error', onSessionError);
        const { rows } = await session.query<{ locked: boolean }>(
          `SELECT pg_try_advisory_lock($1::int, hashtext('forwarder')) AS locked`,
          [forwarderLockClass],
        );
        if (rows[0]?.locked !== true) {
          if (role !== 'standby') logger.info('another process forwards; standing by');
          role = 'standby';
          session.removeListener('error', onSessionError);
          session.release();
          session = undefined;
          await pause(options.standbyPollMs);
          continue;
        }
        role = 'active';
        logger.info(
          { destinations: options.destinations.map((destination) => destination.name) },
          'forwarder active',
        );
        await lead(serialized(session));
        retryMs = options.restartInitialMs;
      } catch (error) {
        if (stopping) break;
        logger.error({ err: error, retryMs }, 'forwarder failed; restarting');
        role = 'starting';
        await pause(retryMs);
        retryMs = Math.min(options.restartMaxMs, retryMs * 2);
      } finally {
        if (session !== undefined) {
          session.removeListener('error', onSessionError);
          // Ending the session releases the lock, so a standby can take over.
          session.release(true);
        }
      }
    }
    role = 'stopped';
  };

  const running = run();
  return {
    get role() {
      return role;
    },
    wake: () => {
      statesStale = true;
      wake();
    },
    stop: async () => {
      stopping = true;
      halt?.abort();
      wakeStandby?.();
      await running;
      await agent.close().catch(() => {});
    },
  };
};
