/**
 * The configuration of calltrail's bounds: body size (never over what one record can archive),
 * timeouts, trusted proxies. Each bad value names its variable.
 */
import { describe, expect, it } from 'vitest';
import { maxRecordBytes } from '../src/archive/archived-event.ts';
import { ConfigError, loadConfig } from '../src/config.ts';

const failure = (env: NodeJS.ProcessEnv): string => {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).message;
  }
  throw new Error('expected a ConfigError');
};

describe('configured bounds', () => {
  it('never accepts a body limit larger than one archived record can hold', () => {
    expect(loadConfig({}).webhook.bodyLimitBytes).toBeLessThanOrEqual(maxRecordBytes);
    expect(loadConfig({ CALLTRAIL_BODY_LIMIT_BYTES: String(maxRecordBytes) }).webhook.bodyLimitBytes).toBe(
      maxRecordBytes,
    );
    expect(failure({ CALLTRAIL_BODY_LIMIT_BYTES: String(maxRecordBytes + 1) })).toMatch(
      /CALLTRAIL_BODY_LIMIT_BYTES=.*1000000/,
    );
    expect(failure({ CALLTRAIL_BODY_LIMIT_BYTES: String(64 * 1024 * 1024) })).toMatch(
      /CALLTRAIL_BODY_LIMIT_BYTES/,
    );
  });

  it('reads the timeouts and limits, and names a bad one', () => {
    const config = loadConfig({
      CALLTRAIL_HEADERS_TIMEOUT_MS: '2000',
      CALLTRAIL_REQUEST_TIMEOUT_MS: '4000',
      CALLTRAIL_BODY_TIMEOUT_MS: '3000',
      CALLTRAIL_IDLE_TIMEOUT_MS: '1500',
      CALLTRAIL_MAX_CONCURRENT_BODIES: '8',
      CALLTRAIL_MAX_EVENT_LOOP_DELAY_MS: '0',
      CALLTRAIL_REMEMBERED_EVENT_IDS: '1000',
      CALLTRAIL_DATABASE_CONNECT_TIMEOUT_MS: '500',
      CALLTRAIL_DATABASE_STATEMENT_TIMEOUT_MS: '700',
    });
    expect(config.http).toMatchObject({
      headersTimeoutMs: 2000,
      requestTimeoutMs: 4000,
      idleTimeoutMs: 1500,
      maxEventLoopDelayMs: 0,
    });
    expect(config.webhook).toMatchObject({
      bodyTimeoutMs: 3000,
      maxConcurrentBodies: 8,
      rememberedEventIds: 1000,
    });
    expect(config.readModels).toEqual({ connectTimeoutMs: 500, statementTimeoutMs: 700 });
    expect(failure({ CALLTRAIL_BODY_TIMEOUT_MS: '0' })).toMatch(/CALLTRAIL_BODY_TIMEOUT_MS/);
    expect(failure({ CALLTRAIL_MAX_CONCURRENT_BODIES: 'many' })).toMatch(/CALLTRAIL_MAX_CONCURRENT_BODIES/);
    expect(failure({ CALLTRAIL_DATABASE_STATEMENT_TIMEOUT_MS: '-1' })).toMatch(
      /CALLTRAIL_DATABASE_STATEMENT_TIMEOUT_MS/,
    );
    expect(failure({ CALLTRAIL_HEADERS_TIMEOUT_MS: '20000', CALLTRAIL_REQUEST_TIMEOUT_MS: '10000' })).toMatch(
      /CALLTRAIL_HEADERS_TIMEOUT_MS=20000: must not exceed CALLTRAIL_REQUEST_TIMEOUT_MS/,
    );
  });

  it('trusts proxies given by address, CIDR range or range name, and nothing else', () => {
    expect(loadConfig({}).http.trustProxy).toBe(false);
    expect(
      loadConfig({ CALLTRAIL_TRUST_PROXY: '10.0.0.0/8, 192.0.2.1,::1,fd00::/8,loopback' }).http.trustProxy,
    ).toEqual(['10.0.0.0/8', '192.0.2.1', '::1', 'fd00::/8', 'loopback']);
    for (const bad of [
      'true',
      '2',
      '10.0.0.0/33',
      'proxy.internal',
      '300.1.1.1',
      '10.0.0.1/8/2',
      '::1/129',
    ]) {
      expect(failure({ CALLTRAIL_TRUST_PROXY: bad })).toMatch(
        /^invalid configuration:\n {2}CALLTRAIL_TRUST_PROXY=/,
      );
    }
  });
});
