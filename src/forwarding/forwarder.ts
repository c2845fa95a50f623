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
 *   failing call holds up no other. It records outcomes on pooled connections, in batches; each
 *   write names the attempt it follows, so an outcome never lands twice. It holds calls in memory
 *   as lanes: the recorder hands it each new delivery, which opens its call's lane when nothing of
 *   the call is pending before it, or joins the lane holding everything of its call; the rest it
 *   finds by looking in the database (after a restart, behind a retry, past the memory bound).
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
  type RecordedDelivery,
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
  /**
   * Attempts in flight at once, over every destination; `unrecordedPerAttempt` times as many calls
   * may be between an attempt and its outcome's commit (what a kill can send twice).
   */
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
/**
 * Calls attempted or waiting for their outcome's commit, per attempt in flight: a call's next event
 * waits for that commit, but the attempt's connection need not, so the receiver sees at most
 * `concurrency` requests at once while commits are awaited side by side.
 */
export const unrecordedPerAttempt = 4;
/** Attempt outcomes written in one statement at most. */
const outcomeBatchMax = 500;

/**
 * Deliveries held in memory between recording and attempt, over every call: past it, newly recorded
 * deliveries wait in the database for a look instead.
 */
const maxQueuedDeliveries = 10_000;

/** One call's deliveries to one destination held in memory, in archive order. */
interface Lane {
  readonly key: string;
  readonly destination: Destination;
  /** Not attempted yet; the first is the head of the call's pending deliveries. */
  readonly queue: DueDelivery[];
  /**
   * Every delivery of the call recorded so far is in `queue` or was attempted by this lane, so one
   * recorded next may join it; false once one was left to the database.
   */
  complete: boolean;
  /** A look chose the head (maybe as a probe): it is attempted without checking again. */
  readonly headChosen: boolean;
}

/** A counting semaphore: at most `size` holders at once, the others waiting in turn. */
const createSlots = (size: number) => {
  let held = 0;
  const waiting: (() => void)[] = [];
  return {
    acquire: async (): Promise<void> => {
      if (held < size) {
        held += 1;
        return;
      }
      // The releasing holder hands its slot over, so `held` stays as it is.
      await new Promise<void>((resolve) => waiting.push(resolve));
    },
    release: (): void => {
      const next = waiting.shift();
      if (next === undefined) held -= 1;
      else next();
    },
  };
};

const laneKey = (destination: string, streamName: string) => `${destination}\u0000${streamName}`;

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
  /** Hands newly recorded deliveries to the dispatcher while it runs (see `dispatch`). */
  let offerDeliveries: ((recorded: readonly RecordedDelivery[], statement: number) => void) | undefined;
  /** Statements the recorder started, counted: the one in flight, or the last. */
  let recordings = 0;

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
        recordings += 1;
        const statement = recordings;
        const recorded = await recordDeliveries(session, deliveries, through, clock());
        lastWrite = clock().getTime();
        for (const [destination, count] of recorded.counts) {
          metrics.forwardingDeliveries.inc({ destination, outcome: 'recorded' }, count);
        }
        if (deliveries.length > 0) {
          for (const event of events) {
            const payload = payloadOf(event);
            if (payload !== undefined) cache.put(payload);
          }
          if (offerDeliveries === undefined) wake();
          else offerDeliveries(recorded.deliveries, statement);
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
    const attemptSlots = createSlots(options.concurrency);
    /** Lanes running at once: attempting, or waiting for an outcome's commit. */
    const lanesAtOnce = options.concurrency * unrecordedPerAttempt;
    /** Every call held in memory, per destination: running, or waiting for a free attempt. */
    const lanes = new Map<string, Lane>();
    /** Lanes waiting for a free attempt, oldest first. */
    const ready: Lane[] = [];
    /** Deliveries in the lanes' queues, over all lanes. */
    let queued = 0;
    /**
     * Due deliveries may be in the database only (not offered, or a look found more than it took):
     * a lane ending wakes the dispatcher to look for them.
     */
    let dueInDatabase = true;
    /**
     * Calls whose lane ended with everything it held delivered or failed, by the recorder's
     * statement in flight then: that statement's snapshot may predate the last outcome and see it
     * pending, but the lane had all of the call's deliveries, so what follows need not wait for it.
     */
    let finishedDuring = new Map<string, number>();
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
      await attemptSlots.acquire();
      const attemptedAt = clock();
      let result: AttemptResult;
      try {
        result = await attemptDelivery(destination.url, payload, {
          agent,
          attempt: number,
          secret: options.secret,
          timeoutMs: options.timeoutMs,
          excerptBytes: options.excerptBytes,
          now: clock,
        });
      } finally {
        attemptSlots.release();
      }
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

    const paused = (name: string) => (states.get(name)?.pausedReason ?? null) !== null;

    /**
     * Attempts a lane's deliveries one after the other, each once the one before it was delivered
     * or failed and that outcome committed, so a call's events go in order without a look each. A
     * retry, a pause or a halt ends the lane; what it had not attempted stays pending in the
     * database, where a look finds it.
     */
    const run = (lane: Lane) => {
      let outcome: 'delivered' | 'failed' | 'retry' | undefined;
      const attemptAll = async () => {
        let chosen = lane.headChosen;
        for (;;) {
          const delivery = lane.queue[0];
          if (delivery === undefined) return;
          // A look chose its head (a probe of a paused destination, maybe): it goes without asking again.
          if (
            !chosen &&
            (signal.aborted ||
              paused(lane.destination.name) ||
              delivery.nextAttemptAt.getTime() > clock().getTime())
          )
            return;
          chosen = false;
          lane.queue.shift();
          queued -= 1;
          outcome = await attempt(delivery, lane.destination);
          endedDuringLook?.add(delivery.id);
          if (outcome === 'retry') return;
        }
      };
      const running: Promise<void> = attemptAll()
        .catch((error: unknown) => {
          failure ??= error;
          halt?.abort();
        })
        .finally(() => {
          lanes.delete(lane.key);
          queued -= lane.queue.length;
          inFlight.delete(running);
          if (!lane.complete || lane.queue.length > 0 || outcome === 'retry') dueInDatabase = true;
          else if (!signal.aborted) finishedDuring.set(lane.key, recordings);
          while (ready.length > 0 && inFlight.size < lanesAtOnce && !signal.aborted) {
            run(ready.shift()!);
          }
          if (dueInDatabase) wake();
        });
      inFlight.add(running);
    };

    const open = (lane: Lane) => {
      lanes.set(lane.key, lane);
      queued += lane.queue.length;
      if (inFlight.size < lanesAtOnce) run(lane);
      else ready.push(lane);
    };

    /**
     * Newly recorded deliveries, straight from the recorder: the head of a call's queue opens a lane
     * at once, and one that follows joins its call's lane when that lane holds everything recorded
     * of the call. Anything else (behind a delivery not in memory, a paused destination, past the
     * memory bound) stays in the database for the next look, which this wakes.
     */
    const offer = (recorded: readonly RecordedDelivery[], statement: number) => {
      const finished = finishedDuring;
      finishedDuring = new Map();
      let left = false;
      const leftCalls = new Set<string>();
      for (const delivery of recorded) {
        const key = laneKey(delivery.destination, delivery.streamName);
        const lane = lanes.get(key);
        // Within one statement, a delivery whose predecessor was left waits as well.
        const behind = leftCalls.has(key) || (delivery.behind && finished.get(key) !== statement);
        if (lane !== undefined) {
          if (lane.complete && queued < maxQueuedDeliveries) {
            lane.queue.push(delivery);
            queued += 1;
          } else {
            lane.complete = false;
            left = true;
          }
          continue;
        }
        const destination = destinations.get(delivery.destination);
        if (
          behind ||
          destination === undefined ||
          paused(delivery.destination) ||
          queued >= maxQueuedDeliveries ||
          signal.aborted
        ) {
          left = true;
          leftCalls.add(key);
          continue;
        }
        open({ key, destination, queue: [delivery], complete: true, headChosen: false });
      }
      if (left) {
        dueInDatabase = true;
        wake();
      }
    };

    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        // Halted while it looked (an abort listener added now would never fire).
        if (wokenWhileBusy || signal.aborted) {
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

    /**
     * Opens a lane for each head a look found (with the deliveries following it), except where its
     * call is held in memory already or its attempt ended during the look; says how many.
     */
    const place = async (
      due: readonly DueDelivery[],
      ended: ReadonlySet<string>,
      probing: Set<string>,
      now: Date,
    ): Promise<number> => {
      let placed = 0;
      for (const delivery of due) {
        if (inFlight.size >= lanesAtOnce || signal.aborted) {
          dueInDatabase = true;
          break;
        }
        if (ended.has(delivery.id)) continue;
        const destination = destinations.get(delivery.destination);
        if (destination === undefined) continue;
        const key = laneKey(delivery.destination, delivery.streamName);
        if (lanes.has(key)) continue;
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
        open({
          key,
          destination,
          queue: [delivery, ...delivery.following],
          // Deliveries recorded after the look's snapshot may be missing from it.
          complete: false,
          headChosen: true,
        });
        placed += 1;
      }
      return placed;
    };

    offerDeliveries = offer;
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
            ![...lanes.values()].some((lane) => lane.destination.name === name)
          ) {
            eligible.push(name);
            probing.add(name);
          }
        }
        let launched = 0;
        const free = lanesAtOnce - inFlight.size;
        // Completions are gathered into one look for due deliveries rather than one look each.
        const worthLooking = inFlight.size === 0 || free >= Math.max(1, Math.floor(lanesAtOnce / 4));
        if (worthLooking && free > 0 && eligible.length > 0) {
          const ended = new Set<string>();
          endedDuringLook = ended;
          const limit = free + lanes.size;
          dueInDatabase = false;
          // Until every delivery the look found is placed (a probe's record is awaited in between).
          try {
            const due = await selectDue(session, eligible, now, limit, followingPerCall);
            // Heads past the free attempts, or a call's deliveries past what a look brings: more to look for.
            if (due.length >= limit || due.some((head) => head.following.length >= followingPerCall))
              dueInDatabase = true;
            launched = await place(due, ended, probing, now);
          } finally {
            endedDuringLook = undefined;
          }
        }
        if (signal.aborted) break;
        if (launched > 0 && dueInDatabase) continue;
        if (inFlight.size > 0) {
          await sleep(options.pollIntervalMs);
          continue;
        }
        const next = await nextDueAt(session, eligible);
        const untilDue = next === undefined ? options.pollIntervalMs : next.getTime() - clock().getTime();
        await sleep(Math.min(options.pollIntervalMs, Math.max(untilDue, 10)));
      }
    } finally {
      offerDeliveries = undefined;
      // Attempts in flight finish (each bounded by the timeout) and are recorded when they can be;
      // lanes waiting for an attempt are dropped (their deliveries stay pending).
      ready.length = 0;
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
