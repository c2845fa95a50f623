/**
 * The pino logger every part of calltrail logs through. Secrets and sensitive Flireo fields (signed
 * recording URLs, tokens, signatures) are redacted wherever they appear in a logged object.
 */
import pino, { type Logger } from 'pino';

export const createLogger = (options: { level: string; destination?: pino.DestinationStream }): Logger =>
  pino(
    {
      level: options.level,
      base: { service: 'calltrail' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers["x-webhook-signature"]',
          'req.headers["x-webhook-token"]',
          'request.headers.authorization',
          'request.headers["x-webhook-signature"]',
          'request.headers["x-webhook-token"]',
          '*.linkStereo',
          '*.recording_url',
          '*.webhookSecret',
          '*.webhookToken',
          '*.apiTokens',
        ],
        censor: '[redacted]',
      },
    },
    options.destination,
  );

export type { Logger };
