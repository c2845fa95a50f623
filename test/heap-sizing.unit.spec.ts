import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { setsHeapGrowing } from '../src/heap-sizing.ts';

describe('heap sizing', () => {
  it('sees a growing percent given on the command line or in NODE_OPTIONS, spelt either way', () => {
    expect(setsHeapGrowing(['--heap-growing-percent=0'])).toBe(true);
    expect(setsHeapGrowing(['--heap_growing_percent=80'])).toBe(true);
    expect(setsHeapGrowing(['--max-semi-space-size=3', '--heap-growing-percent'])).toBe(true);
    expect(setsHeapGrowing(['--max-semi-space-size=3', ''])).toBe(false);
    expect(setsHeapGrowing(['--heap-growing-percentage=3'])).toBe(false);
  });

  it('holds the heap near its live size, and leaves a growing percent given to node alone', () => {
    // A process whose live data stays flat (a ring of recent objects) while it allocates without
    // pause, as a busy server does: its heap at the end, with calltrail's sizing, V8's, and a
    // percent of its own given to node.
    const script = `
      import { applyHeapSizing } from ${JSON.stringify(new URL('../src/heap-sizing.ts', import.meta.url).href)};
      const applied = applyHeapSizing();
      const ring = new Array(100000);
      let peak = 0;
      for (let i = 0; i < 2000000; i++) {
        ring[i % ring.length] = { text: 'x'.repeat(40) + i, pair: [i, i + 1] };
        if (i % 50000 === 0) peak = Math.max(peak, process.memoryUsage().heapTotal);
      }
      console.log(JSON.stringify({ applied, peak }));`;
    const run = (nodeFlags: string[]) =>
      JSON.parse(
        execFileSync(
          process.execPath,
          [...nodeFlags, '--import', 'tsx', '--input-type=module', '-e', script],
          {
            encoding: 'utf8',
            env: { ...process.env, NODE_OPTIONS: '' },
          },
        ),
      ) as { applied: boolean; peak: number };
    const sized = run([]);
    const unsized = run(['--heap-growing-percent=0']);
    expect(sized.applied).toBe(true);
    expect(unsized.applied).toBe(false);
    expect(sized.peak).toBeLessThan(unsized.peak * 0.75);
  }, 180_000);
});
