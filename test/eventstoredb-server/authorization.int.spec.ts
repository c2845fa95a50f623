/**
 * The test server as a secure EventStoreDB (TLS, authentication on), through the real client:
 * credentials are checked (an unknown user or wrong password is UNAUTHENTICATED), a call without
 * credentials is anonymous, and stream ACLs (from stream metadata, else the server's default ACLs)
 * are applied against the caller's groups. A fresh database holds only what a fresh server writes.
 */
import { randomUUID } from 'node:crypto';
import { AccessDeniedError, BACKWARDS, END, EventStoreDBClient, jsonEvent } from '@eventstore/db-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEventStoreDbTestServer, type EventStoreDbTestServer } from './server.ts';

/** Event types a fresh server writes: users, stream metadata, projection bookkeeping. */
const freshServerEventTypes = new Set([
  '$user',
  '$User',
  '$metadata',
  '$ProjectionsInitialized',
  '$ProjectionCreated',
]);

describe('EventStoreDB test server, secure', () => {
  let server: EventStoreDbTestServer;
  const clients: EventStoreDBClient[] = [];

  const clientAs = (credentials: string | undefined) => {
    const url = credentials ? server.url.replace('esdb://', `esdb://${credentials}@`) : server.url;
    const client = EventStoreDBClient.connectionString(url);
    clients.push(client);
    return client;
  };

  const event = () => jsonEvent({ id: randomUUID(), type: 'probe', data: { at: 1 } });

  /** The error the call failed with, or undefined when it succeeded. */
  const failureOf = async (call: Promise<unknown>): Promise<unknown> =>
    call.then(
      () => undefined,
      (error: unknown) => error,
    );

  beforeAll(async () => {
    server = await startEventStoreDbTestServer({ secure: true });
  });

  afterAll(async () => {
    for (const client of clients) await client.dispose();
    await server.stop();
  });

  it('serves TLS with a URL that trusts its certificate', () => {
    expect(server.url).toMatch(/^esdb:\/\/127\.0\.0\.1:\d+\?tls=true&tlsCAFile=/);
  });

  it('accepts the default users with their passwords', async () => {
    for (const user of ['admin:changeit', 'ops:changeit']) {
      const stream = `auth-${randomUUID()}`;
      await clientAs(user).appendToStream(stream, event());
      const read = [];
      for await (const resolved of clientAs(user).readStream(stream)) read.push(resolved.event?.streamId);
      expect(read).toEqual([stream]);
    }
  });

  it.each([
    ['a wrong password', 'admin:wrong'],
    ['an unknown user', 'nobody:changeit'],
  ])('refuses %s with UNAUTHENTICATED, writing nothing', async (_what, credentials) => {
    const stream = `auth-${randomUUID()}`;
    const failure = await failureOf(clientAs(credentials).appendToStream(stream, event()));
    expect(failure).toBeInstanceOf(AccessDeniedError);
    expect(String((failure as Error).message)).toMatch(/UNAUTHENTICATED/);
    const readFailure = await failureOf(
      (async () => {
        for await (const _ of clientAs(credentials).readStream(stream)) break;
      })(),
    );
    expect(String((readFailure as Error).message)).toMatch(/UNAUTHENTICATED/);
    expect(server.store.lastRevision(stream)).toBe(-1n);
  });

  it('treats a call without credentials as anonymous: user streams by the default ACL, not system streams', async () => {
    const anonymous = clientAs(undefined);
    const stream = `auth-${randomUUID()}`;
    await anonymous.appendToStream(stream, event());
    expect(server.store.lastRevision(stream)).toBe(0n);
    const failure = await failureOf(
      (async () => {
        for await (const _ of anonymous.readStream('$users')) break;
      })(),
    );
    expect(failure).toBeInstanceOf(AccessDeniedError);
    expect(String((failure as Error).message)).not.toMatch(/UNAUTHENTICATED/);
    // An admin may read it.
    const users = [];
    for await (const resolved of clientAs('admin:changeit').readStream('$users'))
      users.push(resolved.event?.type);
    expect(users).toEqual(['$User', '$User']);
  });

  it("applies a stream's $acl against the caller's groups", async () => {
    const admin = clientAs('admin:changeit');
    const ops = clientAs('ops:changeit');
    const adminsOnly = `auth-${randomUUID()}`;
    await admin.setStreamMetadata(adminsOnly, { acl: { writeRoles: ['$admins'], readRoles: ['$all'] } });
    expect(await failureOf(ops.appendToStream(adminsOnly, event()))).toBeInstanceOf(AccessDeniedError);
    expect(await failureOf(clientAs(undefined).appendToStream(adminsOnly, event()))).toBeInstanceOf(
      AccessDeniedError,
    );
    await admin.appendToStream(adminsOnly, event());
    const readByOps = [];
    for await (const resolved of ops.readStream(adminsOnly)) readByOps.push(resolved.event?.streamId);
    expect(readByOps).toEqual([adminsOnly]);

    const opsStream = `auth-${randomUUID()}`;
    await admin.setStreamMetadata(opsStream, { acl: { writeRoles: ['$ops'], readRoles: ['ops'] } });
    await ops.appendToStream(opsStream, event());
    const unreadable = await failureOf(
      (async () => {
        for await (const _ of clientAs(undefined).readStream(opsStream)) break;
      })(),
    );
    expect(unreadable).toBeInstanceOf(AccessDeniedError);
  });

  it('starts with only the event types a fresh server writes, and no default-ACL settings event', async () => {
    const fresh = await startEventStoreDbTestServer();
    try {
      const types = new Set(fresh.store.allEvents.map((stored) => stored.eventType));
      expect([...types].filter((type) => !freshServerEventTypes.has(type))).toEqual([]);
      expect(fresh.store.allEvents.some((stored) => stored.streamName === '$settings')).toBe(false);
    } finally {
      await fresh.stop();
    }
    // And `$all` read by an admin from the end agrees.
    const last = [];
    for await (const resolved of clientAs('admin:changeit').readAll({
      direction: BACKWARDS,
      fromPosition: END,
      maxCount: 1,
    }))
      last.push(resolved.event?.type);
    expect(last).toHaveLength(1);
  });
});
