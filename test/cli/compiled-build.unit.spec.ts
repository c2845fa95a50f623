/**
 * Which code `bin/calltrail.js` runs: the compiled build only while it is newer than every source it
 * was compiled from, the sources otherwise, so an edit is never hidden by a stale build.
 */
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { compiledBuild } from '../../bin/compiled-build.js';

describe('compiledBuild', () => {
  let root: string;
  const at = (seconds: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, seconds));
  const write = (file: string, seconds: number) => {
    const full = path.join(root, file);
    mkdirSync(path.dirname(full), { recursive: true });
    writeFileSync(full, '');
    utimesSync(full, at(seconds), at(seconds));
  };
  const touchFolder = (folder: string, seconds: number) =>
    utimesSync(path.join(root, folder), at(seconds), at(seconds));
  const entry = () => path.join(root, 'dist', 'src', 'cli', 'main.js');

  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), 'calltrail-build-'));
    write('src/cli/main.ts', 10);
    write('src/webhook/routes.ts', 10);
    write('projections/calls.ts', 10);
    for (const folder of ['src/cli', 'src/webhook', 'src', 'projections']) touchFolder(folder, 10);
  });

  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('runs the sources when there is no build', () => {
    expect(compiledBuild(root)).toEqual({ run: 'sources', reason: 'not built' });
  });

  it('runs the build when it is newer than every source', () => {
    write('dist/src/cli/main.js', 20);
    expect(compiledBuild(root)).toEqual({ run: 'compiled', entry: entry() });
  });

  it('runs the sources when a nested source file changed after the build', () => {
    write('dist/src/cli/main.js', 20);
    write('src/webhook/routes.ts', 30);
    expect(compiledBuild(root)).toEqual({ run: 'sources', reason: 'sources changed since the build' });
  });

  it('runs the sources when a projection changed after the build', () => {
    write('dist/src/cli/main.js', 20);
    write('projections/calls.ts', 30);
    expect(compiledBuild(root)).toMatchObject({ run: 'sources' });
  });

  it('runs the sources when a file was deleted or added after the build (only its folder changes)', () => {
    write('dist/src/cli/main.js', 20);
    touchFolder('src/webhook', 30);
    expect(compiledBuild(root)).toMatchObject({ run: 'sources' });
  });

  it('runs the build alone when the sources are not there', () => {
    rmSync(path.join(root, 'src'), { recursive: true });
    rmSync(path.join(root, 'projections'), { recursive: true });
    write('dist/src/cli/main.js', 20);
    expect(compiledBuild(root)).toEqual({ run: 'compiled', entry: entry() });
  });
});
