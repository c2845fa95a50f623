import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/database/database.ts';
import { unnestInsert, type UnnestColumn } from '../../src/database/sql.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

interface Row {
  readonly id: number;
  readonly label: string | null;
  readonly at: string | null;
  readonly amount: string;
  readonly flag: boolean;
  readonly document: string | null;
}

const columns: readonly UnnestColumn<Row>[] = [
  { name: 'id', type: 'int4', value: (row) => row.id },
  { name: 'label', type: 'text', value: (row) => row.label },
  { name: 'at', type: 'timestamptz', value: (row) => row.at },
  { name: 'amount', type: 'numeric', value: (row) => row.amount },
  { name: 'flag', type: 'bool', value: (row) => row.flag },
  { name: 'document', type: 'json', value: (row) => row.document },
];

describe('unnestInsert', () => {
  let testDatabase: TestDatabase;
  let database: Database;
  beforeAll(async () => {
    testDatabase = await createTestDatabase('sql');
    database = openDatabase(testDatabase.url, { max: 1 });
    await database.pool.query(
      'CREATE TABLE samples (id int PRIMARY KEY, label text, at timestamptz, amount numeric(20, 0), flag bool, document json)',
    );
  });
  afterAll(async () => {
    await database.close();
    await testDatabase.drop();
  });

  it('writes every value back exactly, whatever characters the text holds', async () => {
    const labels = [
      '',
      'NULL',
      'null',
      ' padded ',
      'a,b',
      '{braces}',
      'quote " inside',
      'back\\slash',
      'line\nbreak\ttab',
      'ünïcødé 📞',
      null,
    ];
    const rows: Row[] = labels.map((label, id) => ({
      id,
      label,
      at: id % 2 === 0 ? null : '2026-03-01T10:00:00.123Z',
      amount: '18446744073709551615',
      flag: id % 3 === 0,
      document: JSON.stringify({ label, nested: ['x', { y: '"\\' }] }),
    }));
    await database.pool.query(unnestInsert('samples', columns, rows, ''));
    const { rows: stored } = await database.pool.query<{
      id: number;
      label: string | null;
      at: Date | null;
      amount: string;
      flag: boolean;
      document: unknown;
    }>('SELECT id, label, at, amount::text, flag, document FROM samples ORDER BY id');
    expect(stored).toEqual(
      rows.map((row) => ({
        id: row.id,
        label: row.label,
        at: row.at === null ? null : new Date(row.at),
        amount: row.amount,
        flag: row.flag,
        document: row.document === null ? null : (JSON.parse(row.document) as unknown),
      })),
    );
  });

  it('keeps a column without NULLs, JSON text exactly as sent, and a JSON NULL as SQL NULL', async () => {
    await database.pool.query('TRUNCATE samples');
    const documents = [
      '{"a":1}',
      '{"escaped":"\\u00e9 \\" \\\\ \\n","list":[1,"two",null]}',
      null,
      '"just a string"',
      '[]',
      null,
    ];
    const rows: Row[] = documents.map((document, id) => ({
      id: 100 + id,
      label: ['', 'a,b', 'quote " inside', 'back\\slash', '{braces}', 'NULL'][id]!,
      at: '2026-03-01T10:00:00.000Z',
      amount: String(id),
      flag: false,
      document,
    }));
    await database.pool.query(unnestInsert('samples', columns, rows, ''));
    const { rows: stored } = await database.pool.query<{
      id: number;
      label: string;
      document: string | null;
    }>('SELECT id, label, document::text AS document FROM samples ORDER BY id');
    expect(stored).toEqual(rows.map(({ id, label, document }) => ({ id, label, document })));
  });

  it('writes nothing for no rows', async () => {
    await database.pool.query('TRUNCATE samples');
    const result = await database.pool.query(unnestInsert('samples', columns, [], ''));
    expect(result.rowCount).toBe(0);
  });
});
