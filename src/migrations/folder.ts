/**
 * Where the committed SQL migrations are. They ship beside the code, in `migrations/` at the package
 * root, whether the code runs from its TypeScript sources (`src/`) or from the compiled build
 * (`dist/src/`); the root is the nearest folder above this module with a `package.json`.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const packageRoot = (from: string): string => {
  for (let folder = path.dirname(from); ;) {
    if (existsSync(path.join(folder, 'package.json'))) return folder;
    const parent = path.dirname(folder);
    if (parent === folder) throw new Error(`no package.json above ${from}`);
    folder = parent;
  }
};

const root = packageRoot(fileURLToPath(import.meta.url));

/** The migrations of one database part: `read-models` or `event-store`. */
export const migrationsFolder = (part: 'read-models' | 'event-store'): string =>
  path.join(root, 'migrations', part);
