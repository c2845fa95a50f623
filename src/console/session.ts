/**
 * The console's session: the API token the user signed in with, kept in an HttpOnly, SameSite=Strict
 * cookie (Secure when the console is reached over https), never in a URL. The cookie carries no
 * more than the token: every console page and every download is checked exactly as the audit API
 * checks a bearer token, so the console grants nothing the token does not.
 *
 * For reads (GET and HEAD) the cookie stands in for `Authorization: Bearer`, on the console's own
 * routes and on the audit API's (the console links to its CSV export and its `/live` feed). Nothing
 * that changes state accepts the cookie alone: sign-out also needs a token derived from the session
 * (a form field), and every form post must come from the console's own origin.
 */
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import fastifyCookie from '@fastify/cookie';
import type { AppDependencies } from '../app.ts';
import { HttpProblem } from '../http/problem.ts';

export const sessionCookieName = 'calltrail_session';

// RFC 6750 b64token, as the Authorization header takes it; longer than any sensible token.
const tokenPattern = /^[A-Za-z0-9\-._~+/]+=*$/;
const maxTokenLength = 512;

export const isTokenShaped = (token: string): boolean =>
  token.length > 0 && token.length <= maxTokenLength && tokenPattern.test(token);

/** The cookie's token, when the request carries a well-formed one. */
export const sessionToken = (request: FastifyRequest): string | undefined => {
  const token = request.cookies[sessionCookieName];
  return token !== undefined && isTokenShaped(token) ? token : undefined;
};

/** Bound to the session: a page from another site cannot know it, so it cannot forge a sign-out. */
export const csrfToken = (sessionTokenValue: string): string =>
  createHash('sha256').update(`calltrail-console-csrf:${sessionTokenValue}`).digest('base64url');

const isSecure = (request: FastifyRequest, publicUrl: string | undefined): boolean =>
  request.protocol === 'https' || (publicUrl?.startsWith('https:') ?? false);

export const setSessionCookie = (
  reply: FastifyReply,
  token: string,
  publicUrl: string | undefined,
): FastifyReply =>
  // No Max-Age: a session cookie, gone when the browser closes.
  reply.setCookie(sessionCookieName, token, {
    path: '/',
    httpOnly: true,
    sameSite: 'strict',
    secure: isSecure(reply.request, publicUrl),
  });

export const clearSessionCookie = (reply: FastifyReply, publicUrl: string | undefined): FastifyReply =>
  reply.clearCookie(sessionCookieName, {
    path: '/',
    httpOnly: true,
    sameSite: 'strict',
    secure: isSecure(reply.request, publicUrl),
  });

const readMethods = new Set(['GET', 'HEAD']);

/**
 * A form post is accepted only from this origin: browsers send `Origin` (and `Sec-Fetch-Site`) with
 * every POST, so a cross-site form is refused even before the SameSite cookie rule applies.
 */
export const requireSameOrigin = (request: FastifyRequest): void => {
  const site = request.headers['sec-fetch-site'];
  const origin = request.headers.origin;
  const host = request.headers.host;
  const sameSite = site === undefined || site === 'same-origin';
  // A privacy setting can make a browser send `Origin: null`; then `Sec-Fetch-Site` must vouch.
  let sameOrigin = origin === undefined || (origin === 'null' && site === 'same-origin');
  if (origin !== undefined && origin !== 'null' && host !== undefined) {
    try {
      sameOrigin = new URL(origin).host === host;
    } catch {
      sameOrigin = false;
    }
  }
  if (!sameSite || !sameOrigin) {
    throw new HttpProblem(403, 'Forbidden', 'this form must be sent from the console itself', [
      { field: 'headers/origin', message: 'is not this server' },
    ]);
  }
};

/**
 * Lets the session cookie stand in for a bearer token on reads. Registered on the root instance
 * before the audit API, so the API's own token check then sees the token and decides.
 */
export const sessionAuthentication = fp<AppDependencies>(
  async (app) => {
    await app.register(fastifyCookie);
    app.addHook('onRequest', async (request) => {
      if (!readMethods.has(request.method) || request.headers.authorization !== undefined) return;
      if (request.url.startsWith('/webhooks')) return;
      const token = sessionToken(request);
      if (token !== undefined) request.headers.authorization = `Bearer ${token}`;
    });
  },
  { name: 'calltrail-console-session' },
);
