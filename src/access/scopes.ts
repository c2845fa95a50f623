/**
 * What each role may do, as scopes. A route needs one scope (see `route-scopes.ts`); a token's role
 * grants a fixed set of them.
 */
import type { Role } from './api-tokens.ts';

export const scopes = [
  /** Call history, archived events, proofs, quarantine, health, live events, the delivery log. */
  'archive:read',
  /** The terminations CSV export. */
  'archive:export',
  /** The whole archive (or a prefix of it) as NDJSON in global order. */
  'archive:replay',
  /** Retry deliveries, pause and resume destinations. */
  'deliveries:control',
  /** Prometheus metrics: traffic and operations. */
  'metrics:read',
  /** Who read what: the access log. */
  'access-log:read',
] as const;
export type Scope = (typeof scopes)[number];

const auditor: readonly Scope[] = ['archive:read', 'archive:export'];
const operator: readonly Scope[] = [...auditor, 'archive:replay', 'deliveries:control', 'metrics:read'];
const admin: readonly Scope[] = scopes;

export const roleScopes: Readonly<Record<Role, ReadonlySet<Scope>>> = {
  auditor: new Set(auditor),
  operator: new Set(operator),
  admin: new Set(admin),
};

export const grants = (role: Role, scope: Scope): boolean => roleScopes[role].has(scope);
