/**
 * What a request's log lines say about it: method, a URL that can never hold a credential, host,
 * sender. A token may sit in a path (`/webhooks/flireo/<token>`, and whatever a client mistypes
 * around it: another method, a trailing slash, other case, percent-encoding) or in a query string;
 * headers are never logged. So:
 * - any path under `/webhooks/flireo/` is logged as `/webhooks/flireo/[redacted]`;
 * - a path no route matched keeps only segments that cannot be a credential (short ones);
 * - a query string keeps the values of the route's declared parameters only;
 * - and whatever remains, any configured secret or token in it is masked too.
 */
import type { FastifyRequest } from 'fastify';
import type { Config } from '../config.ts';

const redacted = '[redacted]';
/** Generated and configured tokens are at least 16 characters; shorter segments are kept. */
const credentialLength = 16;
const webhookTokenPath = /^\/*webhooks\/+flireo\/+[^/]/i;

const decoded = (text: string): string => {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
};

const declaredQueryNames = (request: FastifyRequest): ReadonlySet<string> => {
  const schema = request.routeOptions?.schema?.querystring as
    { properties?: Record<string, unknown> } | undefined;
  return new Set(Object.keys(schema?.properties ?? {}));
};

const maskQuery = (query: string, declared: ReadonlySet<string>): string =>
  query
    .split('&')
    .map((pair) => {
      const at = pair.indexOf('=');
      const name = at === -1 ? pair : pair.slice(0, at);
      if (at === -1) return name.length >= credentialLength ? redacted : name;
      return declared.has(decoded(name)) ? pair : `${name}=${redacted}`;
    })
    .join('&');

/** The URL as it may be logged. `credentials`: the configured secrets and tokens. */
export const loggableUrl = (request: FastifyRequest, credentials: readonly string[]): string => {
  const url = request.url;
  const queryAt = url.indexOf('?');
  const path = queryAt === -1 ? url : url.slice(0, queryAt);
  const query = queryAt === -1 ? undefined : url.slice(queryAt + 1);
  if (webhookTokenPath.test(decoded(path))) return `/webhooks/flireo/${redacted}`;
  const matched = request.is404 !== true && request.routeOptions?.url !== undefined;
  const safePath = matched
    ? path
    : path
        .split('/')
        .map((segment) => (decoded(segment).length >= credentialLength ? redacted : segment))
        .join('/');
  let logged =
    query === undefined ? safePath : `${safePath}?${maskQuery(query, declaredQueryNames(request))}`;
  for (const credential of credentials) {
    for (const form of new Set([credential, encodeURIComponent(credential)])) {
      logged = logged.split(form).join(redacted);
    }
  }
  return logged;
};

/** Pino serializers for the `req` and `request` keys Fastify and calltrail log requests under. */
export const requestLogSerializers = (config: Config) => {
  const credentials = [
    config.webhook.secret,
    config.webhook.token,
    ...config.apiTokens.map((token) => token.token),
  ].filter((credential): credential is string => credential !== undefined && credential !== '');
  const serialize = (request: FastifyRequest) => ({
    method: request.method,
    url: loggableUrl(request, credentials),
    host: request.host,
    remoteAddress: request.ip,
  });
  return { req: serialize, request: serialize };
};
