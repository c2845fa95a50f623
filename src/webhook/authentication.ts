/**
 * Who may deliver webhooks: Flireo's signature (HMAC-SHA256 over `<timestamp>.<raw body>` with the
 * shared secret), or a shared token (bearer header, `X-Webhook-Token`, or the last path segment, for
 * senders that can only be given a URL). When both are configured either is accepted.
 *
 * The signature is verified over the raw bytes as received, before anything parses them: a body that
 * was re-serialized is not the body that was signed. Secrets are compared in constant time, and no
 * secret, token or signature ever appears in a result (results are logged).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Config } from '../config.ts';
import type { ReceptionMetadata } from '../archive/archived-event.ts';

export type AuthenticationMethod = ReceptionMetadata['authentication'];

export interface Authenticated {
  readonly ok: true;
  readonly method: AuthenticationMethod;
  readonly signatureVerified: boolean;
  /** The signed `X-Webhook-Timestamp` (Unix seconds), which identifies one delivery. */
  readonly signedTimestamp: string | undefined;
}

export interface Unauthenticated {
  readonly ok: false;
  /** Why, fit for a log line and a 401 detail: names the failed check, never a credential. */
  readonly reason: string;
}

export type AuthenticationResult = Authenticated | Unauthenticated;

export interface DeliveryCredentials {
  readonly headers: IncomingHttpHeaders;
  /** The `:token` path segment, when the request came in on `/webhooks/flireo/<token>`. */
  readonly pathToken: string | undefined;
  /** The raw body; undefined when it was not read whole (too large), so no signature can verify. */
  readonly rawBody: Buffer | undefined;
  readonly now: Date;
}

const timestampPattern = /^\d{1,12}$/;
const signaturePattern = /^(?:sha256=)?([0-9a-fA-F]{64})$/;
const bearerPattern = /^Bearer[ \t]+(\S+)[ \t]*$/i;

const headerValue = (headers: IncomingHttpHeaders, name: string): string | undefined => {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
};

type Check = { readonly ok: true } | { readonly ok: false; readonly reason: string };

const verifySignature = (
  secret: string,
  toleranceSeconds: number,
  credentials: DeliveryCredentials,
  timestamp: string | undefined,
  signature: string | undefined,
): Check => {
  if (timestamp === undefined) return { ok: false, reason: 'X-Webhook-Timestamp header is missing' };
  if (!timestampPattern.test(timestamp)) {
    return { ok: false, reason: 'X-Webhook-Timestamp must be Unix seconds' };
  }
  const skewSeconds = Math.abs(credentials.now.getTime() / 1000 - Number(timestamp));
  if (skewSeconds > toleranceSeconds) {
    return {
      ok: false,
      reason: `X-Webhook-Timestamp is more than ${toleranceSeconds} s from the server's time`,
    };
  }
  const given = signature === undefined ? undefined : signaturePattern.exec(signature.trim())?.[1];
  if (given === undefined) {
    return {
      ok: false,
      reason: 'X-Webhook-Signature must be 64 hex digits of HMAC-SHA256, optionally prefixed sha256=',
    };
  }
  if (credentials.rawBody === undefined) {
    return { ok: false, reason: 'the signature cannot be verified over an incomplete body' };
  }
  const expected = createHmac('sha256', secret).update(`${timestamp}.`).update(credentials.rawBody).digest();
  // Both are 32 bytes: the pattern guarantees 64 hex digits.
  return timingSafeEqual(expected, Buffer.from(given, 'hex'))
    ? { ok: true }
    : { ok: false, reason: 'X-Webhook-Signature does not match the body' };
};

/** Hashing first makes the comparison constant time whatever the lengths. */
const sameSecret = (given: string, expected: string): boolean =>
  timingSafeEqual(
    createHash('sha256').update(given).digest(),
    createHash('sha256').update(expected).digest(),
  );

const presentedTokens = (credentials: DeliveryCredentials): string[] => {
  const authorization = headerValue(credentials.headers, 'authorization');
  const bearer = authorization === undefined ? undefined : bearerPattern.exec(authorization)?.[1];
  return [bearer, headerValue(credentials.headers, 'x-webhook-token'), credentials.pathToken].filter(
    (token): token is string => token !== undefined && token !== '',
  );
};

const verifyToken = (token: string, credentials: DeliveryCredentials): Check => {
  const tokens = presentedTokens(credentials);
  if (tokens.length === 0) return { ok: false, reason: 'no webhook token was presented' };
  // Every presented token is compared, so timing says nothing about which one was checked.
  const matches = tokens.map((presented) => sameSecret(presented, token));
  return matches.includes(true) ? { ok: true } : { ok: false, reason: 'the webhook token is not valid' };
};

export const authenticateDelivery = (
  settings: Config['webhook'],
  credentials: DeliveryCredentials,
): AuthenticationResult => {
  const { secret, token } = settings;
  if (secret === undefined && token === undefined) {
    return settings.insecure
      ? { ok: true, method: 'none', signatureVerified: false, signedTimestamp: undefined }
      : { ok: false, reason: 'webhook authentication is not configured on this server' };
  }

  const reasons: string[] = [];
  const timestamp = headerValue(credentials.headers, 'x-webhook-timestamp');
  const signature = headerValue(credentials.headers, 'x-webhook-signature');
  if (secret !== undefined) {
    const signed = timestamp !== undefined || signature !== undefined;
    // Without signature headers and with a token configured, the sender may simply use the token.
    if (!signed && token !== undefined) {
      reasons.push('the request is not signed');
    } else {
      const check = verifySignature(
        secret,
        settings.signatureToleranceSeconds,
        credentials,
        timestamp,
        signature,
      );
      if (check.ok)
        return { ok: true, method: 'signature', signatureVerified: true, signedTimestamp: timestamp };
      reasons.push(check.reason);
    }
  }
  if (token !== undefined) {
    const check = verifyToken(token, credentials);
    if (check.ok) return { ok: true, method: 'token', signatureVerified: false, signedTimestamp: undefined };
    reasons.push(check.reason);
  }
  return { ok: false, reason: reasons.join('; ') };
};
