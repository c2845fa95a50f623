import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { authenticateDelivery, type DeliveryCredentials } from '../../src/webhook/authentication.ts';
import { testConfig, testWebhookSecret, testWebhookToken } from '../support/app.ts';

const now = new Date('2025-08-28T08:02:00.000Z');
const nowSeconds = String(now.getTime() / 1000);
const body = Buffer.from('{"eventType":"status-update"}');
const sign = (timestamp: string, bytes: Buffer = body, secret = testWebhookSecret) =>
  createHmac('sha256', secret).update(`${timestamp}.`).update(bytes).digest('hex');

const credentials = (changes: Partial<DeliveryCredentials> = {}): DeliveryCredentials => ({
  headers: {},
  pathToken: undefined,
  rawBody: body,
  now,
  ...changes,
});

const both = testConfig().webhook;
const secretOnly = testConfig({ webhook: { token: undefined } }).webhook;
const tokenOnly = testConfig({ webhook: { secret: undefined } }).webhook;

describe('authenticateDelivery', () => {
  it('verifies the signature over the exact bytes, with or without the sha256= prefix, in any case', () => {
    for (const signature of [
      sign(nowSeconds),
      `sha256=${sign(nowSeconds)}`,
      sign(nowSeconds).toUpperCase(),
    ]) {
      expect(
        authenticateDelivery(
          secretOnly,
          credentials({ headers: { 'x-webhook-timestamp': nowSeconds, 'x-webhook-signature': signature } }),
        ),
      ).toEqual({ ok: true, method: 'signature', signatureVerified: true, signedTimestamp: nowSeconds });
    }
  });

  it('applies the tolerance in both directions, inclusive', () => {
    const at = (offset: number) => {
      const timestamp = String(Number(nowSeconds) + offset);
      return authenticateDelivery(
        secretOnly,
        credentials({
          headers: { 'x-webhook-timestamp': timestamp, 'x-webhook-signature': sign(timestamp) },
        }),
      ).ok;
    };
    expect([at(-301), at(-300), at(0), at(300), at(301)]).toEqual([false, true, true, true, false]);
  });

  it.each([
    [
      'a timestamp that is not Unix seconds',
      { 'x-webhook-timestamp': '2025-08-28T08:02:00Z' },
      /Unix seconds/,
    ],
    ['a signature of the wrong length', { 'x-webhook-signature': 'abcd' }, /64 hex digits/],
    ['a signature that is not hex', { 'x-webhook-signature': 'z'.repeat(64) }, /64 hex digits/],
    ['another prefix', { 'x-webhook-signature': `sha1=${'a'.repeat(64)}` }, /64 hex digits/],
  ])('refuses %s', (_name, headers, reason) => {
    const result = authenticateDelivery(
      secretOnly,
      credentials({
        headers: { 'x-webhook-timestamp': nowSeconds, 'x-webhook-signature': sign(nowSeconds), ...headers },
      }),
    );
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toMatch(reason);
  });

  it('cannot verify a signature without the whole body', () => {
    const result = authenticateDelivery(
      secretOnly,
      credentials({
        rawBody: undefined,
        headers: { 'x-webhook-timestamp': nowSeconds, 'x-webhook-signature': sign(nowSeconds) },
      }),
    );
    expect(!result.ok && result.reason).toMatch(/incomplete body/);
  });

  it('accepts a token from any of the three places, and refuses near misses', () => {
    const accepted = (changes: Partial<DeliveryCredentials>) =>
      authenticateDelivery(tokenOnly, credentials(changes));
    expect(accepted({ headers: { authorization: `Bearer ${testWebhookToken}` } })).toMatchObject({
      ok: true,
      method: 'token',
    });
    expect(accepted({ headers: { authorization: `bearer   ${testWebhookToken}` } }).ok).toBe(true);
    expect(accepted({ headers: { 'x-webhook-token': testWebhookToken } }).ok).toBe(true);
    expect(accepted({ pathToken: testWebhookToken }).ok).toBe(true);
    for (const near of [
      testWebhookToken.slice(0, -1),
      `${testWebhookToken}x`,
      testWebhookToken.toUpperCase(),
      '',
    ]) {
      expect(accepted({ headers: { 'x-webhook-token': near } }).ok).toBe(false);
      expect(accepted({ pathToken: near }).ok).toBe(false);
    }
    expect(accepted({ headers: { authorization: testWebhookToken } }).ok).toBe(false);
  });

  it('with both configured, accepts either, and a valid token despite a bad signature', () => {
    expect(authenticateDelivery(both, credentials({ pathToken: testWebhookToken }))).toMatchObject({
      method: 'token',
      signatureVerified: false,
      signedTimestamp: undefined,
    });
    expect(
      authenticateDelivery(
        both,
        credentials({
          pathToken: testWebhookToken,
          headers: { 'x-webhook-timestamp': nowSeconds, 'x-webhook-signature': 'f'.repeat(64) },
        }),
      ),
    ).toMatchObject({ ok: true, method: 'token' });
    const neither = authenticateDelivery(both, credentials());
    expect(!neither.ok && neither.reason).toBe('the request is not signed; no webhook token was presented');
  });

  it('accepts without credentials only when nothing is configured and insecure webhooks are allowed', () => {
    const none = { ...both, secret: undefined, token: undefined };
    expect(authenticateDelivery({ ...none, insecure: true }, credentials())).toMatchObject({
      ok: true,
      method: 'none',
    });
    expect(authenticateDelivery({ ...none, insecure: false }, credentials()).ok).toBe(false);
    expect(authenticateDelivery({ ...both, insecure: true }, credentials()).ok).toBe(false);
  });

  it('never puts a credential in its reason', () => {
    const wrong = 'a-wrong-token-value-0123456789';
    const result = authenticateDelivery(
      both,
      credentials({
        pathToken: wrong,
        headers: {
          'x-webhook-timestamp': nowSeconds,
          'x-webhook-signature': sign(nowSeconds, body, 'other-secret'),
        },
      }),
    );
    expect(result.ok).toBe(false);
    const reason = !result.ok ? result.reason : '';
    for (const secret of [
      wrong,
      testWebhookSecret,
      testWebhookToken,
      sign(nowSeconds, body, 'other-secret'),
    ]) {
      expect(reason).not.toContain(secret);
    }
  });
});
