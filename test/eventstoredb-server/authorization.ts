/**
 * Who is calling, and what they may do, as a secure (TLS) server decides it: HTTP Basic credentials
 * in the `authorization` header name a user, checked against the users a fresh database has
 * (`admin` in `$admins`, `ops` in `$ops`, both with password `changeit`); an unknown user or a wrong
 * password is refused with UNAUTHENTICATED before the call runs; a call without credentials is
 * anonymous. Stream ACLs (`$acl` roles) are matched against the caller's name and groups; `$admins`
 * may do everything; `$all` grants everyone. An insecure server authenticates nobody and authorizes
 * everything, as `--insecure` does.
 */
import { status, type Metadata, type sendUnaryData } from '@grpc/grpc-js';
import { rpcError } from './protocol.ts';

export interface Caller {
  /** Undefined: anonymous. */
  readonly user: string | undefined;
  readonly groups: readonly string[];
}

export const anonymous: Caller = { user: undefined, groups: [] };

/** The users a fresh database holds, and their default passwords. */
export const defaultUsers: ReadonlyMap<
  string,
  { readonly password: string; readonly groups: readonly string[] }
> = new Map([
  ['admin', { password: 'changeit', groups: ['$admins'] }],
  ['ops', { password: 'changeit', groups: ['$ops'] }],
]);

/** The caller the metadata's credentials name, anonymous without any, or undefined when they are wrong. */
export const authenticate = (metadata: Metadata): Caller | undefined => {
  const header = metadata.get('authorization')[0];
  if (header === undefined) return anonymous;
  const match = /^Basic\s+(\S+)$/i.exec(String(header));
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const separator = decoded.indexOf(':');
  if (separator < 0) return undefined;
  const user = decoded.slice(0, separator);
  const account = defaultUsers.get(user);
  if (!account || account.password !== decoded.slice(separator + 1)) return undefined;
  return { user, groups: account.groups };
};

/** Whether any of `roles` covers the caller. */
export const grants = (caller: Caller, roles: readonly string[]): boolean =>
  caller.groups.includes('$admins') ||
  roles.includes('$all') ||
  (caller.user !== undefined && roles.includes(caller.user)) ||
  caller.groups.some((group) => roles.includes(group));

const unauthenticated = () => rpcError(status.UNAUTHENTICATED, 'Bad authentication token.');

const callers = new WeakMap<object, Caller>();

/** The caller an authenticated call was made by (anonymous on an insecure server). */
export const callerOf = (call: object): Caller => callers.get(call) ?? anonymous;

type Call = { readonly metadata: Metadata; emit(event: 'error', error: unknown): boolean };

/**
 * Authenticates a call before its handler runs. Unary and client-streaming handlers answer a refusal
 * through their callback; streaming ones end the call with it.
 */
export const authenticated = <Handler extends (...args: never[]) => void>(handler: Handler): Handler =>
  ((...args: Parameters<Handler>) => {
    const [call, callback] = args as unknown as [Call, sendUnaryData<unknown> | undefined];
    const caller = authenticate(call.metadata);
    if (caller === undefined) {
      if (callback) callback(unauthenticated());
      else call.emit('error', unauthenticated());
      return;
    }
    callers.set(call, caller);
    handler(...args);
  }) as Handler;
