/**
 * What serve and project say about the role they are connected to the event store as, and which
 * runtime role names `migrate --runtime-role` accepts.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { migrateStores } from '../../src/stores/migrate.ts';
import {
  reportConnectedRole,
  RuntimeRoleError,
  validateRuntimeRoleName,
  type ConnectedRole,
} from '../../src/stores/runtime-role.ts';
import { capturingLogger } from '../support/projector-harness.ts';

const levelsFor = (role: ConnectedRole | undefined) => {
  const { logger, lines } = capturingLogger();
  reportConnectedRole(role, logger);
  return lines().map((line) => ({ level: line['level'], msg: String(line['msg']) }));
};

const role = (overrides: Partial<ConnectedRole>): ConnectedRole => ({
  name: 'calltrail',
  superuser: false,
  ownsEvents: false,
  embedded: false,
  ...overrides,
});

describe('the start-up role report', () => {
  it('warns, naming the risk, for a superuser or the owner of the events', () => {
    for (const connected of [role({ superuser: true }), role({ ownsEvents: true })]) {
      const lines = levelsFor(connected);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ level: 40 });
      expect(lines[0]!.msg).toContain('can disable the append-only triggers');
      expect(lines[0]!.msg).toContain('calltrail migrate --runtime-role');
    }
  });

  it('says one line of information, not a warning, on the embedded default', () => {
    const lines = levelsFor(role({ superuser: true, ownsEvents: true, embedded: true }));
    expect(lines).toEqual([{ level: 30, msg: expect.stringContaining('embedded PostgreSQL') as unknown }]);
  });

  it('says nothing for an ordinary role, or when the event store is not PostgreSQL', () => {
    expect(levelsFor(role({}))).toEqual([]);
    expect(levelsFor(undefined)).toEqual([]);
  });
});

describe('runtime role names', () => {
  it('accepts plain lower-case names and refuses anything that would need quoting', () => {
    expect(validateRuntimeRoleName('calltrail_runtime')).toBe('calltrail_runtime');
    for (const name of ['', 'Calltrail', '1role', 'a-b', 'x"; DROP TABLE calls; --', 'a'.repeat(64)]) {
      expect(() => validateRuntimeRoleName(name), name).toThrow(RuntimeRoleError);
    }
  });
});

describe('migrate --runtime-role on the embedded default', () => {
  it('is refused before anything starts: the embedded server has only its superuser', async () => {
    const { logger } = capturingLogger();
    await expect(migrateStores(loadConfig({}), logger, { runtimeRole: 'calltrail_runtime' })).rejects.toThrow(
      /--runtime-role needs an external PostgreSQL/,
    );
  });
});
