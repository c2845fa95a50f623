/**
 * How long a client may take: to send its headers, its whole request, and to sit idle on a kept-alive
 * connection. Node checks the first two on a timer, every 30 s by default, which let a client that
 * trickles a byte at a time hold its connection for minutes; the timer here runs often enough that
 * a slow client is closed close to its bound. (The webhook's own body timeout, in
 * `src/webhook/request-body.ts`, answers 408 sooner still.)
 */
import type { Config } from '../config.ts';

const maxCheckingIntervalMs = 1_000;

export const connectionLimits = (http: Config['http']) => {
  const checkingIntervalMs = Math.max(
    25,
    Math.min(maxCheckingIntervalMs, Math.floor(Math.min(http.headersTimeoutMs, http.requestTimeoutMs) / 4)),
  );
  return {
    requestTimeout: http.requestTimeoutMs,
    keepAliveTimeout: http.idleTimeoutMs,
    http: {
      headersTimeout: http.headersTimeoutMs,
      requestTimeout: http.requestTimeoutMs,
      connectionsCheckingInterval: checkingIntervalMs,
    },
  };
};
