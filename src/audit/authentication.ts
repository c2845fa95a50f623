/**
 * API authentication: `Authorization: Bearer <token>` with one of `config.apiTokens`. Every audit
 * route requires it; the webhook (its own authentication), `/healthz`, `/readyz` and the API
 * documentation at `/docs` do not. `/metrics` requires it too: counts of calls and exports are
 * operational data.
 *
 * A missing or malformed header is a 401 with `WWW-Authenticate`; a well-formed token that is not
 * configured is a 403. Tokens are compared in constant time: every configured token is checked,
 * over fixed-length digests, whatever the presented token looks like.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { HttpProblem } from '../http/problem.ts';

/** The OpenAPI security scheme name the audit routes declare. */
export const bearerSecurityScheme = 'bearerAuth';

const challenge = 'Bearer realm="calltrail"';

// RFC 6750 b64token.
const bearerPattern = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

const digest = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

export const requireApiToken = (apiTokens: readonly string[]) => {
  const known = apiTokens.map(digest);
  return async (request: FastifyRequest): Promise<void> => {
    const header = request.headers.authorization;
    if (header === undefined || header === '') {
      throw new HttpProblem(
        401,
        'Unauthorized',
        'this endpoint requires an API token: Authorization: Bearer <token>',
        [{ field: 'authorization', message: 'is missing' }],
        { 'www-authenticate': challenge },
      );
    }
    const match = bearerPattern.exec(header);
    if (!match) {
      throw new HttpProblem(
        401,
        'Unauthorized',
        'the Authorization header must be "Bearer <token>"',
        [{ field: 'authorization', message: 'is not a bearer token' }],
        { 'www-authenticate': `${challenge}, error="invalid_request"` },
      );
    }
    const presented = digest(match[1]!);
    let accepted = false;
    for (const token of known) accepted = timingSafeEqual(token, presented) || accepted;
    if (!accepted) {
      throw new HttpProblem(403, 'Forbidden', 'the API token is not valid for this server', [
        { field: 'authorization', message: 'is not a known API token' },
      ]);
    }
  };
};
