#!/usr/bin/env node
// The calltrail command. Runs the compiled build in dist/ (`npm run build`, which `npm ci` runs) when
// it is current; otherwise the TypeScript sources through tsx, so edited sources never run stale.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { compiledBuild } from './compiled-build.js';

const build = compiledBuild(path.dirname(import.meta.dirname));
if (build.run === 'compiled') {
  await import(pathToFileURL(build.entry).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
