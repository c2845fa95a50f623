/**
 * How V8 sizes a calltrail process's heap. Left to itself, V8 lets the old generation grow to up to
 * four times what is live before collecting it again, the more the faster the program allocates; a
 * busy server whose live heap stays flat at about 50 MiB sat at about 310 MiB RSS. A fixed growing
 * factor of 1.5 collects once the heap has grown by half of what survived the last collection, which
 * holds it near the live heap at a small cost in collections (see the README's Memory section).
 *
 * Applied at run time by `calltrail serve` (and by the benchmark's measured app, so it runs as
 * shipped); this V8 flag is read at every collection, so setting it at start-up is the same as
 * passing it to node. A process started with its own `--heap-growing-percent` (command line or
 * `NODE_OPTIONS`) keeps it; `--heap-growing-percent=0` restores V8's own sizing.
 */
import v8 from 'node:v8';

export const heapGrowingPercent = 50;

const flag = '--heap-growing-percent';

/** Whether node's options already set the growing percent (V8 reads `_` and `-` alike). */
export const setsHeapGrowing = (options: readonly string[]): boolean =>
  options.some((option) => {
    const name = option.replaceAll('_', '-');
    return name === flag || name.startsWith(`${flag}=`);
  });

/** Sets calltrail's heap growing factor unless the process was started with one; true if it did. */
export const applyHeapSizing = (
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string = process.env['NODE_OPTIONS'] ?? '',
): boolean => {
  if (setsHeapGrowing([...execArgv, ...nodeOptions.split(/\s+/)])) return false;
  v8.setFlagsFromString(`${flag}=${heapGrowingPercent}`);
  return true;
};
