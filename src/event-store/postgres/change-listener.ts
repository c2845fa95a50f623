/**
 * One LISTEN connection per event store, shared by its live subscriptions: a notification only says
 * "something was committed, read again". Subscribers never learn positions from it, so coalesced or
 * late notifications cannot make them skip anything; polling covers notifications that never come.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { EventStoreUnavailableError } from '../event-store.ts';
import { withTimeout } from './errors.ts';

export const appendedChannel = 'event_store_appended';

/** A live LISTEN session. Once lost it stays lost; the next subscriber gets a new one. */
export class ListenSession {
  /** Bumped on every notification; a subscriber compares it before and after reading. */
  version = 0;
  lost: EventStoreUnavailableError | undefined;
  private readonly waiters = new Set<() => void>();

  constructor(readonly client: pg.Client) {}

  notified(): void {
    this.version += 1;
    this.wakeAll();
  }

  fail(error: EventStoreUnavailableError): void {
    this.lost ??= error;
    this.wakeAll();
  }

  /**
   * Resolves when a notification newer than `sinceVersion` arrived, after `pollMs`, or on `signal`;
   * rejects when the session is lost, since a subscriber must then start again from its checkpoint.
   */
  async waitForChange(sinceVersion: number, pollMs: number, signal: AbortSignal): Promise<void> {
    if (this.lost) throw this.lost;
    if (this.version !== sinceVersion || signal.aborted) return;
    const woken = new AbortController();
    const wake = () => woken.abort();
    this.waiters.add(wake);
    try {
      // Ends early, rejecting, when woken or aborted; either way it is time to look again.
      await sleep(pollMs, undefined, { signal: AbortSignal.any([signal, woken.signal]) }).catch(() => {});
    } finally {
      this.waiters.delete(wake);
    }
    const lost = this.lostError();
    if (lost && !signal.aborted) throw lost;
  }

  private lostError(): EventStoreUnavailableError | undefined {
    return this.lost;
  }

  private wakeAll(): void {
    for (const wake of [...this.waiters]) wake();
  }
}

export class ChangeListener {
  private current: Promise<ListenSession> | undefined;
  private closed = false;

  constructor(
    private readonly connectionString: string,
    private readonly timeoutMs: number,
  ) {}

  /** The live session, connecting one if there is none or the last one was lost. */
  async session(): Promise<ListenSession> {
    if (this.closed) throw new EventStoreUnavailableError('the event store is closed');
    const pending = this.current;
    const existing = pending ? await pending.catch(() => undefined) : undefined;
    if (existing && !existing.lost) return existing;
    // Another subscriber may have started a new session while we looked at the old one.
    if (this.current !== pending) return this.session();
    const connecting = this.connect();
    this.current = connecting;
    return connecting;
  }

  async close(): Promise<void> {
    this.closed = true;
    const session = await this.current?.catch(() => undefined);
    this.current = undefined;
    if (session) {
      session.fail(new EventStoreUnavailableError('the event store is closed'));
      await session.client.end().catch(() => {});
    }
  }

  private async connect(): Promise<ListenSession> {
    const client = new pg.Client({
      connectionString: this.connectionString,
      connectionTimeoutMillis: this.timeoutMs,
      keepAlive: true,
      application_name: 'calltrail event store listener',
    });
    const session = new ListenSession(client);
    const lose = (reason: string) => {
      if (session.lost) return;
      session.fail(
        new EventStoreUnavailableError(`lost the event store's notification connection: ${reason}`),
      );
      void client.end().catch(() => {});
    };
    client.on('error', (error) => lose(error.message));
    client.on('end', () => lose('connection ended'));
    client.on('notification', (message) => {
      if (message.channel === appendedChannel) session.notified();
    });
    await withTimeout(
      (async () => {
        await client.connect();
        await client.query(`LISTEN ${appendedChannel}`);
      })(),
      this.timeoutMs,
      'listening for appends',
      () => void client.end().catch(() => {}),
    ).catch(async (error: unknown) => {
      await client.end().catch(() => {});
      throw error;
    });
    return session;
  }
}
