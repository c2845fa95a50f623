// @ts-check
/**
 * Whether the compiled build in `dist/` may run: it must exist and be newer than every source it
 * was compiled from. Plain JavaScript, because it decides before anything can compile TypeScript.
 */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

/** The folders `tsconfig.build.json` compiles. */
const sourceFolders = ['src', 'projections'];

/** @param {string} file */
const modifiedAt = (file) => {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
};

/**
 * The latest modification under `folder`, its subfolders' own times included (a deleted or renamed
 * file changes only its folder's).
 * @param {string} folder
 * @returns {number}
 */
const newestUnder = (folder) => {
  let newest = modifiedAt(folder) ?? 0;
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    const entryPath = path.join(folder, entry.name);
    const time = entry.isDirectory() ? newestUnder(entryPath) : (modifiedAt(entryPath) ?? 0);
    if (time > newest) newest = time;
  }
  return newest;
};

/**
 * @param {string} root the package root
 * @returns {{ run: 'compiled', entry: string } | { run: 'sources', reason: 'not built' | 'sources changed since the build' }}
 */
export const compiledBuild = (root) => {
  const entry = path.join(root, 'dist', 'src', 'cli', 'main.js');
  // Every build rewrites every output, so the entry's time is the build's.
  const builtAt = modifiedAt(entry);
  if (builtAt === undefined) return { run: 'sources', reason: 'not built' };
  for (const folder of sourceFolders) {
    const sources = path.join(root, folder);
    if (modifiedAt(sources) !== undefined && newestUnder(sources) > builtAt) {
      return { run: 'sources', reason: 'sources changed since the build' };
    }
  }
  return { run: 'compiled', entry };
};
