// @ts-check
/**
 * The `prepare` script, run by `npm ci` and `npm install`: compiles calltrail to dist/ (as
 * `npm run build` does). A production install without dev dependencies (`npm ci --omit=dev`) has no
 * TypeScript compiler; it then skips the build, and calltrail runs its sources, as it does whenever
 * there is no current build. To deploy the compiled build without dev dependencies, install
 * everything, then `npm prune --omit=dev`.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import process from 'node:process';

const root = path.dirname(import.meta.dirname);

let compiler;
try {
  compiler = createRequire(path.join(root, 'package.json')).resolve('typescript/bin/tsc');
} catch {
  process.stderr.write(
    'calltrail: TypeScript is not installed (dev dependencies omitted), so nothing was compiled; ' +
      'calltrail will run its sources\n',
  );
  process.exit(0);
}

const build = spawnSync(process.execPath, [compiler, '-p', path.join(root, 'tsconfig.build.json')], {
  stdio: 'inherit',
});
process.exit(build.status ?? 1);
