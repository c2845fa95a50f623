/**
 * `calltrail serve` as an operator runs it: the real command in its own process, with the embedded
 * default in a fresh data directory. First start, webhook ingest, a second serve refused, clean stop
 * on SIGTERM/SIGINT with no PostgreSQL left behind, restart with data and credentials intact, and
 * configuration errors reported by name.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/database/embedded-postgres.ts';

const projectRoot = fileURLToPath(new URL('../..', import.meta.url));
const bin = path.join(projectRoot, 'bin', 'calltrail.js');
const startTimeoutMs = 60_000;

interface Run {
  readonly child: ChildProcess;
  readonly output: () => { stdout: string; stderr: string };
  readonly exited: Promise<number | null>;
}

/** The environment without any CALLTRAIL_* the machine may have, plus the given ones. */
const environment = (variables: Record<string, string>): NodeJS.ProcessEnv => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CALLTRAIL_'))),
  ...variables,
});

/** `npm start` runs in its own process group, so a signal can reach it the way Ctrl-C does. */
const run = (args: readonly string[] | 'npm start', variables: Record<string, string>): Run => {
  const child =
    args === 'npm start'
      ? spawn('npm', ['start', '--silent'], {
          cwd: projectRoot,
          env: environment(variables),
          stdio: ['ignore', 'pipe', 'pipe'],
          detached: true,
        })
      : spawn(process.execPath, [bin, ...args], {
          cwd: projectRoot,
          env: environment(variables),
          stdio: ['ignore', 'pipe', 'pipe'],
        });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => ({ stdout, stderr }), exited };
};

const withTimeout = async <T>(promise: Promise<T>, ms: number, what: string): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
};

/** Processes whose command line mentions `text` (Linux). */
const processesMentioning = async (text: string): Promise<string[]> => {
  const found: string[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const commandLine = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (commandLine.includes(text)) found.push(`${entry}: ${commandLine.split('\u0000').join(' ')}`);
  }
  return found;
};

const statusUpdate = (callSession: string) =>
  JSON.stringify({
    eventTimestamp: 1756368117035,
    eventType: 'status-update',
    callSession,
    fromCaller: '+31612345678',
    toAssistant: '+31850123456',
    status: 'in-progress',
  });

describe('calltrail serve', () => {
  let dataDir: string;
  let port: number;
  const running = new Set<Run>();
  const callSession = randomUUID();

  const serve = (
    extra: Record<string, string> = {},
    command: 'calltrail serve' | 'npm start' = 'calltrail serve',
  ): Run => {
    const started = run(command === 'npm start' ? 'npm start' : ['serve'], {
      CALLTRAIL_DATA_DIR: dataDir,
      CALLTRAIL_HOST: '127.0.0.1',
      CALLTRAIL_PORT: String(port),
      CALLTRAIL_LOG_LEVEL: 'info',
      ...extra,
    });
    running.add(started);
    void started.exited.then(() => running.delete(started));
    return started;
  };

  /** Waits for the start-up banner (or the process's end), then checks `/healthz`. */
  const untilServing = async (started: Run) => {
    const deadline = Date.now() + startTimeoutMs;
    let exitCode: number | null | undefined;
    void started.exited.then((code) => (exitCode = code));
    while (!started.output().stderr.includes('Server URL to give Flireo')) {
      if (exitCode !== undefined)
        throw new Error(`serve exited with ${exitCode}: ${started.output().stderr}`);
      if (Date.now() > deadline) throw new Error(`serve did not start: ${started.output().stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    const banner = started.output().stderr;
    return {
      secret: /with webhook secret (\S+)/.exec(banner)?.[1],
      token: /\/webhooks\/flireo\/([A-Za-z0-9._~-]+)/.exec(banner)?.[1],
      apiToken: /API token \(Authorization: Bearer <token>\): (\S+)/.exec(banner)?.[1],
    };
  };

  /** `calltrail credentials` on the same data directory, parsed like the first start's banner. */
  const showCredentials = async () => {
    const shown = run(['credentials'], { CALLTRAIL_DATA_DIR: dataDir, CALLTRAIL_PORT: String(port) });
    expect(await withTimeout(shown.exited, 30_000, 'calltrail credentials')).toBe(0);
    const { stdout } = shown.output();
    expect(stdout).toContain(`http://localhost:${port}/webhooks/flireo`);
    return {
      secret: /with webhook secret (\S+)/.exec(stdout)?.[1],
      token: /\/webhooks\/flireo\/([A-Za-z0-9._~-]+)/.exec(stdout)?.[1],
      apiToken: /API token \(Authorization: Bearer <token>\): (\S+)/.exec(stdout)?.[1],
    };
  };

  const stop = async (started: Run, signal: NodeJS.Signals) => {
    // `npm start` is stopped like Ctrl-C stops it: the signal goes to its whole process group.
    if (started.child.spawnargs[0] === 'npm') process.kill(-started.child.pid!, signal);
    else started.child.kill(signal);
    return withTimeout(started.exited, 30_000, `stopping serve with ${signal}`);
  };

  /** Connects to the embedded server the way an operator could: port and password from the data dir. */
  const queryArchive = async <Row extends pg.QueryResultRow>(sql: string, params: unknown[] = []) => {
    const postmaster = (await readFile(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8')).split('\n');
    const password = (await readFile(path.join(dataDir, 'postgres-password'), 'utf8')).trim();
    const client = new pg.Client({
      host: '127.0.0.1',
      port: Number(postmaster[3]),
      user: 'postgres',
      password,
      database: 'calltrail',
    });
    await client.connect();
    try {
      return (await client.query<Row>(sql, params)).rows;
    } finally {
      await client.end();
    }
  };

  const deliver = async (token: string) => {
    const response = await fetch(`http://127.0.0.1:${port}/webhooks/flireo/${token}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: statusUpdate(callSession),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'calltrail-serve-'));
    port = await freePort();
  });

  afterAll(async () => {
    for (const started of running) {
      started.child.kill('SIGTERM');
      await withTimeout(started.exited, 30_000, 'stopping a leftover serve').catch(() =>
        started.child.kill('SIGKILL'),
      );
    }
    await rm(dataDir, { recursive: true, force: true });
  });

  let firstCredentials: Awaited<ReturnType<typeof untilServing>>;
  let firstEventId: unknown;

  it('has no credentials to show before the first start', async () => {
    const shown = run(['credentials'], { CALLTRAIL_DATA_DIR: dataDir });
    expect(await withTimeout(shown.exited, 30_000, 'calltrail credentials')).toBe(1);
    expect(shown.output().stderr).toMatch(
      /^calltrail: no credentials have been generated in \S+secrets\.json yet; start calltrail once/,
    );
  });

  it('starts from an empty data directory with generated credentials, and stores a webhook', async () => {
    const first = serve();
    firstCredentials = await untilServing(first);
    const { secret, token, apiToken } = firstCredentials;
    expect(secret).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    expect(token).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    expect(apiToken).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    expect(new Set([secret, token, apiToken]).size).toBe(3);

    const secretsFile = path.join(dataDir, 'secrets.json');
    expect((await stat(secretsFile)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(secretsFile, 'utf8'))).toMatchObject({
      webhookSecret: secret,
      webhookToken: token,
      apiToken,
    });

    const delivered = await deliver(token!);
    expect(delivered.status).toBe(202);
    expect(delivered.body).toMatchObject({ stream: `call-${callSession}`, duplicate: false });
    firstEventId = delivered.body['eventId'];
    const stored = await queryArchive<{ event_id: string }>(
      'SELECT event_id::text FROM event_store.events WHERE stream_name = $1',
      [`call-${callSession}`],
    );
    expect(stored.map((row) => row.event_id)).toEqual([firstEventId]);

    // A wrong token is refused: the generated credentials are really in force.
    expect((await deliver('x'.repeat(43))).status).toBe(401);
  });

  it('refuses a second serve on the same data directory while the first runs', async () => {
    const second = serve({ CALLTRAIL_PORT: String(await freePort()) });
    const code = await withTimeout(second.exited, 30_000, 'the second serve');
    expect(code).not.toBe(0);
    expect(second.output().stderr).toMatch(/data directory .* is in use by another calltrail \(pid \d+/);
    // The first one is unharmed.
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
  });

  it('stops on SIGTERM with exit code 0 and leaves no PostgreSQL behind', async () => {
    const [first] = running;
    expect(first).toBeDefined();
    expect(await stop(first!, 'SIGTERM')).toBe(0);
    expect(await processesMentioning(dataDir)).toEqual([]);
  });

  it('starts again through npm start with its data and credentials, and stores a redelivered webhook once', async () => {
    const again = serve({}, 'npm start');
    const banner = await untilServing(again);
    // Generated credentials are printed on the first start only; `calltrail credentials` shows them.
    expect(banner).toEqual({ secret: '<shown', token: undefined, apiToken: '<shown' });
    for (const credential of Object.values(firstCredentials)) {
      expect(again.output().stderr).not.toContain(credential);
      expect(again.output().stdout).not.toContain(credential);
    }
    const shown = await showCredentials();
    expect(shown).toEqual(firstCredentials);
    const credentials = shown;

    const stored = await queryArchive<{ event_id: string }>(
      'SELECT event_id::text FROM event_store.events WHERE stream_name = $1',
      [`call-${callSession}`],
    );
    expect(stored.map((row) => row.event_id)).toEqual([firstEventId]);

    const redelivered = await deliver(credentials.token!);
    expect(redelivered.status).toBe(202);
    expect(redelivered.body).toEqual({
      eventId: firstEventId,
      stream: `call-${callSession}`,
      duplicate: true,
    });
    const afterRedelivery = await queryArchive<{ n: string }>('SELECT count(*) AS n FROM event_store.events');
    expect(afterRedelivery).toEqual([{ n: '1' }]);

    // npm itself dies of the signal; calltrail, which got it too, shuts down on its own.
    await stop(again, 'SIGINT');
    const deadline = Date.now() + 30_000;
    while ((await processesMentioning(dataDir)).length > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(await processesMentioning(dataDir)).toEqual([]);
    expect(await readdir(dataDir)).not.toContain('calltrail.lock');
  });

  it('stops start-up on a bad configuration variable, naming it, without a stack trace', async () => {
    const bad = serve({ CALLTRAIL_PORT: 'not-a-port' });
    expect(await withTimeout(bad.exited, 30_000, 'serve with a bad port')).toBe(1);
    const { stderr } = bad.output();
    expect(stderr).toContain('CALLTRAIL_PORT');
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(await processesMentioning(dataDir)).toEqual([]);
  });

  it('fails with one clear line when its port is taken, stopping the PostgreSQL it started', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    try {
      const blocked = serve();
      expect(await withTimeout(blocked.exited, startTimeoutMs, 'serve on a taken port')).toBe(1);
      expect(blocked.output().stderr).toMatch(
        /^calltrail: could not start: port \d+ on 127\.0\.0\.1 is already in use/m,
      );
      expect(await processesMentioning(dataDir)).toEqual([]);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('refuses to start without webhook authentication outside the embedded default', async () => {
    const unauthenticated = serve({ CALLTRAIL_DATABASE_URL: 'postgres://calltrail@127.0.0.1:1/calltrail' });
    expect(await withTimeout(unauthenticated.exited, 30_000, 'serve without webhook auth')).toBe(1);
    expect(unauthenticated.output().stderr).toMatch(/CALLTRAIL_WEBHOOK_SECRET.*CALLTRAIL_WEBHOOK_TOKEN/);
  });
});
