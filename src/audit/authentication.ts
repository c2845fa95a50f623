/**
 * API authentication: `Authorization: Bearer <token>` with one of `config.apiTokens`, which says who
 * is calling (the token's name and role). Which routes need a token, and which scope, is decided in
 * one place, `src/access/` (its route table and the hook that applies it); this module only says
 * whose a token is.
 *
 * A missing or malformed header is a 401 with `WWW-Authenticate`; a well-formed token that is not
 * configured is a 403. Tokens are kept and compared as SHA-256 digests, in constant time: every
 * configured digest is compared, whatever the presented token looks like.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { ApiToken, Role } from '../access/api-tokens.ts';
import { HttpProblem } from '../http/problem.ts';

/** The OpenAPI security scheme name the audit routes declare. */
export const bearerSecurityScheme = 'bearerAuth';

const challenge = 'Bearer realm="calltrail"';

// RFC 6750 b64token.
const bearerPattern = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

const digest = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

/** Who a request's token belongs to: never the token itself. */
export interface TokenIdentity {
  readonly name: string;
  readonly role: Role;
}

export type Authenticator = {
  /** The identity of the request's bearer token; throws the 401 or 403 problem otherwise. */
  (request: Pick<FastifyRequest, 'headers'>): TokenIdentity;
  /** The identity of a token given directly (the console's sign-in), or undefined. */
  identify(token: string): TokenIdentity | undefined;
};

export const createAuthenticator = (apiTokens: readonly ApiToken[]): Authenticator => {
  const known = apiTokens.map((token) => ({
    digest: Buffer.from(token.sha256, 'hex'),
    identity: { name: token.name, role: token.role },
  }));
  const identify = (token: string): TokenIdentity | undefined => {
    const presented = digest(token);
    let found: TokenIdentity | undefined;
    for (const entry of known) {
      if (timingSafeEqual(entry.digest, presented)) found ??= entry.identity;
    }
    return found;
  };
  const authenticate = (request: Pick<FastifyRequest, 'headers'>): TokenIdentity => {
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
    const identity = identify(match[1]!);
    if (identity === undefined) {
      throw new HttpProblem(403, 'Forbidden', 'the API token is not valid for this server', [
        { field: 'authorization', message: 'is not a known API token' },
      ]);
    }
    return identity;
  };
  return Object.assign(authenticate, { identify });
};

/**
 * Authentication alone, as an `onRequest` hook. Every route already gets authentication and its
 * scope from `src/access/authorization.ts`; this stays for code that checks a token by itself.
 */
export const requireApiToken = (apiTokens: readonly ApiToken[]) => {
  const authenticate = createAuthenticator(apiTokens);
  return async (request: FastifyRequest): Promise<void> => {
    authenticate(request);
  };
};
