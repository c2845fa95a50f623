/**
 * Configuration: defaults, conversion from environment strings, and errors that name the variable
 * without showing a secret.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';

const secret = 'a-webhook-secret-of-some-length';

const failure = (env: NodeJS.ProcessEnv): string => {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).message;
  }
  throw new Error('expected a ConfigError');
};

describe('loadConfig', () => {
  it('gives the documented defaults for an empty environment', () => {
    expect(loadConfig({})).toEqual({
      eventStoreUrl: undefined,
      databaseUrl: undefined,
      dataDir: './.calltrail',
      host: '0.0.0.0',
      port: 3000,
      publicUrl: undefined,
      logLevel: 'info',
      webhook: {
        secret: undefined,
        token: undefined,
        insecure: false,
        signatureToleranceSeconds: 300,
        bodyLimitBytes: 1_000_000,
        bodyTimeoutMs: 10_000,
        maxConcurrentBodies: 64,
        rememberedEventIds: 50_000,
      },
      appendTimeoutMs: 3_000,
      journal: { dir: undefined, maxBytes: 1_073_741_824 },
      apiTokens: [],
      http: {
        trustProxy: false,
        headersTimeoutMs: 10_000,
        requestTimeoutMs: 30_000,
        idleTimeoutMs: 5_000,
        maxEventLoopDelayMs: 1_000,
      },
      readModels: { connectTimeoutMs: 3_000, statementTimeoutMs: 30_000 },
      live: { maxClients: 1_000, clientBufferBytes: 4 * 1024 * 1024 },
      health: { staleCallSeconds: 3_600, statementTimeoutMs: 5_000, metricsWindowSeconds: 3_600 },
      sealing: {
        key: undefined,
        keyFile: undefined,
        maxEvents: 1000,
        maxSeconds: 60,
        digestDirectory: undefined,
      },
      forwarding: {
        destinations: [],
        secret: undefined,
        retry: { maxAttempts: 21, initialDelayMs: 10_000, maxDelayMs: 7_200_000 },
        timeoutMs: 10_000,
        concurrency: 64,
        pauseAfterFailures: 10,
        probeIntervalMs: 60_000,
      },
    });
  });

  it('reads the health settings and names a bad one', () => {
    expect(
      loadConfig({
        CALLTRAIL_HEALTH_STALE_CALL_SECONDS: '600',
        CALLTRAIL_HEALTH_STATEMENT_TIMEOUT_MS: '2000',
        CALLTRAIL_HEALTH_METRICS_WINDOW_SECONDS: '900',
      }).health,
    ).toEqual({ staleCallSeconds: 600, statementTimeoutMs: 2_000, metricsWindowSeconds: 900 });
    expect(failure({ CALLTRAIL_HEALTH_STALE_CALL_SECONDS: '5' })).toMatch(
      /CALLTRAIL_HEALTH_STALE_CALL_SECONDS=/,
    );
  });

  it('reads the live feed limits and refuses a buffer too small to hold an event', () => {
    expect(
      loadConfig({ CALLTRAIL_LIVE_MAX_CLIENTS: '50', CALLTRAIL_LIVE_CLIENT_BUFFER_BYTES: '65536' }).live,
    ).toEqual({ maxClients: 50, clientBufferBytes: 65_536 });
    expect(failure({ CALLTRAIL_LIVE_CLIENT_BUFFER_BYTES: '100' })).toMatch(
      /CALLTRAIL_LIVE_CLIENT_BUFFER_BYTES=/,
    );
    expect(failure({ CALLTRAIL_LIVE_MAX_CLIENTS: '0' })).toMatch(/CALLTRAIL_LIVE_MAX_CLIENTS=/);
  });

  it('converts numbers, booleans and lists, and treats empty strings as unset', () => {
    const config = loadConfig({
      CALLTRAIL_EVENTSTORE_URL: 'kurrentdb://store.internal:2113?tls=true',
      CALLTRAIL_PORT: '8080',
      CALLTRAIL_INSECURE_WEBHOOKS: 'true',
      CALLTRAIL_API_TOKENS: 'first-token-0123456789,second-token-012345678',
      CALLTRAIL_WEBHOOK_SECRET: secret,
      CALLTRAIL_DATABASE_URL: '',
      CALLTRAIL_JOURNAL_DIR: '/var/lib/calltrail/journal',
      CALLTRAIL_JOURNAL_MAX_BYTES: '2147483648',
    });
    expect(config).toMatchObject({
      eventStoreUrl: 'kurrentdb://store.internal:2113?tls=true',
      databaseUrl: undefined,
      port: 8080,
      webhook: { insecure: true, secret },
      journal: { dir: '/var/lib/calltrail/journal', maxBytes: 2_147_483_648 },
      apiTokens: [
        { name: 'token-1', role: 'admin', token: 'first-token-0123456789' },
        { name: 'token-2', role: 'admin', token: 'second-token-012345678' },
      ],
    });
  });

  it('names every bad variable, and never shows a secret', () => {
    const message = failure({
      CALLTRAIL_PORT: 'eighty',
      CALLTRAIL_EVENTSTORE_URL: 'http://store',
      CALLTRAIL_WEBHOOK_SECRET: 'short-secret',
      CALLTRAIL_LOG_LEVEL: 'loud',
    });
    expect(message).toContain('CALLTRAIL_PORT="eighty"');
    expect(message).toContain('CALLTRAIL_EVENTSTORE_URL="http://store"');
    expect(message).toContain('CALLTRAIL_WEBHOOK_SECRET=(hidden)');
    expect(message).toContain('CALLTRAIL_LOG_LEVEL');
    expect(message).not.toContain('short-secret');
  });

  it.each([
    ['CALLTRAIL_PORT', '70000'],
    ['CALLTRAIL_BODY_LIMIT_BYTES', '10'],
    ['CALLTRAIL_API_TOKENS', 'short'],
    ['CALLTRAIL_WEBHOOK_TOKEN', 'has spaces in it, too many'],
    ['CALLTRAIL_INSECURE_WEBHOOKS', 'maybe'],
    ['CALLTRAIL_JOURNAL_MAX_BYTES', '1000'],
    ['CALLTRAIL_JOURNAL_MAX_BYTES', 'lots'],
  ])('refuses %s=%s', (name, value) => {
    expect(failure({ [name]: value })).toContain(name);
  });

  it('refuses a misspelt variable, but not the test harness’s own', () => {
    expect(failure({ CALLTRAIL_WEBHOOK_SECRT: secret })).toContain('CALLTRAIL_WEBHOOK_SECRT');
    expect(loadConfig({ CALLTRAIL_TEST_DATABASE_URL: 'postgres://x' }).port).toBe(3000);
  });
});
