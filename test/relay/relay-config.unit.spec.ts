/**
 * Relay mode's configuration: off without a URL, the defaults, and every bad value refused at
 * start-up with the variable named (a destination that is calltrail itself among them).
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

const failure = (env: NodeJS.ProcessEnv): string => {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).message;
  }
  throw new Error('expected a ConfigError');
};

describe('relay configuration', () => {
  it('is off without a relay URL', () => {
    expect(loadConfig({}).relay).toBeUndefined();
  });

  it('has deadlines below Flireo’s, a 200 ms archive budget and bounded answers by default', () => {
    const relay = loadConfig({ CALLTRAIL_RELAY_URL: 'https://handler.example.com/flireo' }).relay!;
    expect(relay.url.href).toBe('https://handler.example.com/flireo');
    expect(relay.deadlineMs).toEqual({ 'assistant-request': 4_500, 'tool-calls': 9_500 });
    expect(relay.archiveBudgetMs).toBe(200);
    expect(relay.maxResponseBytes).toBe(1_048_576);
    expect(relay.archivedResponseBytes).toBe(65_536);
    expect(relay.overrides.size).toBe(0);
    expect(relay.fallbacks).toEqual({});
  });

  it('takes per-assistant overrides and fallbacks as JSON', () => {
    const relay = loadConfig({
      CALLTRAIL_RELAY_URL: 'http://handler.internal:8080/hook',
      CALLTRAIL_RELAY_OVERRIDES: JSON.stringify({ '+31850123456': 'https://other.example.com/x' }),
      CALLTRAIL_RELAY_FALLBACKS: JSON.stringify({
        assistantRequest: { assistant: { name: 'fallback' } },
        toolCalls: { lookup: 'unavailable' },
      }),
    }).relay!;
    expect(relay.overrides.get('+31850123456')?.href).toBe('https://other.example.com/x');
    expect(relay.fallbacks.assistantRequest).toEqual({ assistant: { name: 'fallback' } });
    expect(relay.fallbacks.toolCalls).toEqual({ lookup: 'unavailable' });
  });

  it.each([
    [{ CALLTRAIL_RELAY_URL: 'ftp://handler.example.com/' }, 'CALLTRAIL_RELAY_URL'],
    [
      { CALLTRAIL_RELAY_URL: 'https://h.example.com/', CALLTRAIL_RELAY_OVERRIDES: '{' },
      'CALLTRAIL_RELAY_OVERRIDES',
    ],
    [
      { CALLTRAIL_RELAY_URL: 'https://h.example.com/', CALLTRAIL_RELAY_OVERRIDES: '{"+1":"file:///etc"}' },
      'CALLTRAIL_RELAY_OVERRIDES',
    ],
    [
      { CALLTRAIL_RELAY_URL: 'https://h.example.com/', CALLTRAIL_RELAY_FALLBACKS: '{"toolCall":{}}' },
      'CALLTRAIL_RELAY_FALLBACKS',
    ],
    [{ CALLTRAIL_RELAY_OVERRIDES: '{}' }, 'CALLTRAIL_RELAY_OVERRIDES'],
    [
      { CALLTRAIL_RELAY_URL: 'https://h.example.com/', CALLTRAIL_RELAY_TOOL_CALLS_DEADLINE_MS: '10001' },
      'CALLTRAIL_RELAY_TOOL_CALLS_DEADLINE_MS',
    ],
    [
      {
        CALLTRAIL_RELAY_URL: 'https://h.example.com/',
        CALLTRAIL_RELAY_ASSISTANT_REQUEST_DEADLINE_MS: '5001',
      },
      'CALLTRAIL_RELAY_ASSISTANT_REQUEST_DEADLINE_MS',
    ],
    [
      {
        CALLTRAIL_RELAY_URL: 'https://h.example.com/',
        CALLTRAIL_RELAY_ARCHIVE_BUDGET_MS: '1000',
        CALLTRAIL_RELAY_ASSISTANT_REQUEST_DEADLINE_MS: '900',
      },
      'CALLTRAIL_RELAY_ARCHIVE_BUDGET_MS',
    ],
    [
      {
        CALLTRAIL_RELAY_URL: 'https://h.example.com/',
        CALLTRAIL_RELAY_MAX_RESPONSE_BYTES: '2048',
        CALLTRAIL_RELAY_ARCHIVED_RESPONSE_BYTES: '4096',
      },
      'CALLTRAIL_RELAY_ARCHIVED_RESPONSE_BYTES',
    ],
  ])('refuses %j naming %s', (env, variable) => {
    expect(failure(env)).toContain(variable);
  });

  it.each([
    [{ CALLTRAIL_RELAY_URL: 'http://localhost:3000/webhooks/flireo' }],
    [{ CALLTRAIL_RELAY_URL: 'http://127.0.0.1:3000/webhooks/flireo' }],
    [{ CALLTRAIL_RELAY_URL: 'http://[::1]:3000/' }],
    [{ CALLTRAIL_RELAY_URL: 'http://10.0.0.5:8080/', CALLTRAIL_HOST: '10.0.0.5', CALLTRAIL_PORT: '8080' }],
    [
      {
        CALLTRAIL_RELAY_URL: 'https://calltrail.example.com/x',
        CALLTRAIL_PUBLIC_URL: 'https://calltrail.example.com',
      },
    ],
    [
      {
        CALLTRAIL_RELAY_URL: 'https://h.example.com/',
        CALLTRAIL_RELAY_OVERRIDES: JSON.stringify({ '+31850123456': 'http://localhost:3000/' }),
      },
    ],
  ])('refuses a destination that is calltrail itself: %j', (env) => {
    expect(failure(env)).toMatch(/CALLTRAIL_RELAY_(URL|OVERRIDES).*loop/);
  });

  it('accepts this machine on another port (the customer handler beside calltrail)', () => {
    expect(loadConfig({ CALLTRAIL_RELAY_URL: 'http://127.0.0.1:8080/hook' }).relay?.url.port).toBe('8080');
  });

  it('never shows credentials in the relay URL when refusing it', () => {
    const message = failure({ CALLTRAIL_RELAY_URL: 'gopher://user:hunter2@h.example.com/' });
    expect(message).toContain('CALLTRAIL_RELAY_URL');
    expect(message).not.toContain('hunter2');
  });
});
