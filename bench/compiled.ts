/**
 * The code the benchmark measures is calltrail's production build: compiled JavaScript run by plain
 * Node, as `npm ci` (through `npm run build`) leaves it, not the TypeScript sources under a run-time
 * compiler, whose loader thread alone costs tens of MiB and start-up time. Compiled afresh from the
 * working tree at the start of every run, so the figures are always those of the code in front of you.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const benchDir = fileURLToPath(new URL('.', import.meta.url));
const buildDir = path.join(benchDir, '.build');

/** The measured-process entry (`child.ts`, compiled). */
export const compiledChild = path.join(buildDir, 'bench', 'child.js');
/** The calltrail command line (`src/cli/main.ts`, compiled), as `bin/calltrail.js` runs it from `dist/`. */
export const compiledCli = path.join(buildDir, 'src', 'cli', 'main.js');

export const compileMeasuredCode = async (): Promise<void> => {
  const tsc = path.join(benchDir, '..', 'node_modules', 'typescript', 'bin', 'tsc');
  await promisify(execFile)(process.execPath, [tsc, '-p', path.join(benchDir, 'tsconfig.measured.json')]);
};
