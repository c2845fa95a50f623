/**
 * Forwarding's configuration and retry schedule: destinations validated at start-up with errors
 * naming the variable, the relay's destination added by name, and the documented schedule.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { forwardingDestinations } from '../../src/forwarding/destinations.ts';
import { judgeAttempt, nominalDelaysMs } from '../../src/forwarding/retry-policy.ts';

const env = (more: Record<string, string>) => ({ CALLTRAIL_LOG_LEVEL: 'silent', ...more });
const secret = 'forwarding-secret-0123456789';

describe('forwarding configuration', () => {
  it('reads destinations with their event types', () => {
    const config = loadConfig(
      env({
        CALLTRAIL_FORWARD_DESTINATIONS: JSON.stringify([
          { name: 'customer', url: 'https://hooks.example.com/flireo' },
          { name: 'warehouse', url: 'http://10.0.0.5:8080/in', eventTypes: ['end-of-call-report'] },
        ]),
        CALLTRAIL_FORWARD_SECRET: secret,
      }),
    );
    expect(config.forwarding.destinations.map((d) => [d.name, d.url.href, d.eventTypes])).toEqual([
      ['customer', 'https://hooks.example.com/flireo', undefined],
      ['warehouse', 'http://10.0.0.5:8080/in', ['end-of-call-report']],
    ]);
    expect(config.forwarding.retry).toEqual({
      maxAttempts: 21,
      initialDelayMs: 10_000,
      maxDelayMs: 7_200_000,
    });
  });

  it.each([
    ['not JSON', '[{name', /not JSON/],
    ['a non-http scheme', '[{"name":"a","url":"ftp://x/"}]', /only http and https/],
    ['a duplicate name', '[{"name":"a","url":"http://x/"},{"name":"a","url":"http://y/"}]', /named twice/],
    ['an unknown event type', '[{"name":"a","url":"http://x/","eventTypes":["calls"]}]', /eventTypes/],
    ['credentials in the URL', '[{"name":"a","url":"http://u:p@x/"}]', /credentials/],
    ['an unknown field', '[{"name":"a","url":"http://x/","headers":{}}]', /\//],
  ])('refuses %s, naming the variable', (_, value, message) => {
    expect(() =>
      loadConfig(env({ CALLTRAIL_FORWARD_DESTINATIONS: value, CALLTRAIL_FORWARD_SECRET: secret })),
    ).toThrow(/CALLTRAIL_FORWARD_DESTINATIONS/);
    expect(() =>
      loadConfig(env({ CALLTRAIL_FORWARD_DESTINATIONS: value, CALLTRAIL_FORWARD_SECRET: secret })),
    ).toThrow(message);
  });

  it('needs the secret once there is a destination, and never shows it', () => {
    expect(() =>
      loadConfig(env({ CALLTRAIL_FORWARD_DESTINATIONS: '[{"name":"a","url":"http://x/"}]' })),
    ).toThrow(/CALLTRAIL_FORWARD_SECRET/);
    expect(() => loadConfig(env({ CALLTRAIL_FORWARD_SECRET: 'short' }))).toThrow(
      /CALLTRAIL_FORWARD_SECRET=\(hidden\)/,
    );
    expect(() =>
      loadConfig(env({ CALLTRAIL_FORWARD_RETRY_INITIAL_MS: '5000', CALLTRAIL_FORWARD_RETRY_MAX_MS: '1000' })),
    ).toThrow(/CALLTRAIL_FORWARD_RETRY_INITIAL_MS/);
  });

  it('adds the relay destination for the types the relay does not answer live', () => {
    const all = forwardingDestinations([], 'https://customer.example.com/flireo', secret);
    expect(all).toEqual([
      {
        name: 'relay',
        url: new URL('https://customer.example.com/flireo'),
        eventTypes: ['status-update', 'end-of-call-report', 'unknown'],
      },
    ]);
    expect(() => forwardingDestinations([], 'https://customer.example.com/', undefined)).toThrow(
      /CALLTRAIL_FORWARD_SECRET/,
    );
    const named = loadConfig(
      env({
        CALLTRAIL_FORWARD_DESTINATIONS: '[{"name":"relay","url":"http://x/"}]',
        CALLTRAIL_FORWARD_SECRET: secret,
      }),
    ).forwarding.destinations;
    expect(() => forwardingDestinations(named, 'https://customer.example.com/', secret)).toThrow(
      /CALLTRAIL_FORWARD_DESTINATIONS/,
    );
    expect(forwardingDestinations([], undefined, undefined)).toEqual([]);
  });
});

describe('retry schedule', () => {
  const schedule = { maxAttempts: 21, initialDelayMs: 10_000, maxDelayMs: 7_200_000 };
  const now = new Date('2026-03-01T00:00:00Z');

  it('spans about a day by default', () => {
    const delays = nominalDelaysMs(schedule);
    expect(delays.slice(0, 4)).toEqual([10_000, 20_000, 40_000, 80_000]);
    const hours = delays.reduce((sum, delay) => sum + delay, 0) / 3_600_000;
    expect(hours).toBeGreaterThan(20);
    expect(hours).toBeLessThan(26);
  });

  it('delivers on 2xx, retries 408/429/5xx/no answer, fails other answers at once and after the last attempt', () => {
    const judge = (status: number | undefined, attempts = 1, retryAfterMs?: number) =>
      judgeAttempt({ status, retryAfterMs }, attempts, schedule, now, () => 0.5);
    expect(judge(204)).toEqual({ outcome: 'delivered' });
    for (const status of [408, 429, 500, 503, undefined]) expect(judge(status).outcome).toBe('retry');
    for (const status of [301, 400, 401, 404, 422]) {
      expect(judge(status)).toEqual({ outcome: 'failed', reason: 'rejected' });
    }
    expect(judge(503, 21)).toEqual({ outcome: 'failed', reason: 'exhausted' });
    expect(judge(429, 1, 120_000)).toEqual({
      outcome: 'retry',
      nextAttemptAt: new Date(now.getTime() + 120_000),
    });
    expect(judge(429, 1, 10 * 86_400_000)).toEqual({
      outcome: 'retry',
      nextAttemptAt: new Date(now.getTime() + schedule.maxDelayMs),
    });
  });

  it('jitters each delay by at most a fifth', () => {
    const low = judgeAttempt({ status: 500, retryAfterMs: undefined }, 3, schedule, now, () => 0);
    const high = judgeAttempt({ status: 500, retryAfterMs: undefined }, 3, schedule, now, () => 0.999);
    expect(low).toEqual({ outcome: 'retry', nextAttemptAt: new Date(now.getTime() + 32_000) });
    expect(high.outcome === 'retry' && high.nextAttemptAt.getTime() - now.getTime()).toBeLessThanOrEqual(
      48_000,
    );
  });
});
