/**
 * What every benchmark hands back, and how the run is shown: a table on stdout (calltrail beside
 * the ceiling measured in the same run, their ratio, and the target it is reported against) and
 * the same figures, with details, as JSON.
 */
export interface ResultRow {
  readonly measure: string;
  /** calltrail's figure, formatted. */
  readonly value: string;
  /** The same work done the fastest way this machine knows, measured in the same run. */
  readonly ceiling?: string;
  /** calltrail as a share of the ceiling. */
  readonly ratio?: number;
  readonly target?: TargetCheck;
}

export interface TargetCheck {
  readonly description: string;
  readonly pass: boolean;
}

export interface BenchmarkResult {
  readonly name: string;
  readonly rows: readonly ResultRow[];
  /** Raw numbers, settings and diagnostics, for the JSON file. */
  readonly details: Record<string, unknown>;
  /** Caveats a reader of the figures must know (scale differs from the target's, ...). */
  readonly notes: readonly string[];
}

export const formatRate = (perSecond: number, unit: string): string =>
  `${perSecond >= 10_000 ? Math.round(perSecond).toLocaleString('en-US') : perSecond.toFixed(perSecond >= 100 ? 0 : 1)} ${unit}/s`;

export const formatMs = (ms: number): string => `${ms < 10 ? ms.toFixed(2) : ms.toFixed(1)} ms`;

export const formatMicros = (micros: number | undefined): string =>
  micros === undefined
    ? '?'
    : `${micros >= 100 ? micros.toFixed(0) : micros >= 10 ? micros.toFixed(1) : micros.toFixed(2)} µs`;

export const formatPercent = (ratio: number): string => `${(ratio * 100).toFixed(0)}%`;

const verdict = (target: TargetCheck | undefined): string =>
  target === undefined ? '' : target.pass ? 'pass' : 'MISS';

export const renderTable = (results: readonly BenchmarkResult[]): string => {
  const header = ['benchmark', 'measure', 'calltrail', 'ceiling (same run)', 'ratio', 'target', ''];
  const lines: string[][] = [header];
  for (const result of results) {
    result.rows.forEach((row, index) => {
      lines.push([
        index === 0 ? result.name : '',
        row.measure,
        row.value,
        row.ceiling ?? '',
        row.ratio === undefined ? '' : formatPercent(row.ratio),
        row.target?.description ?? '',
        verdict(row.target),
      ]);
    });
  }
  const widths = header.map((_, column) => Math.max(...lines.map((line) => line[column]!.length)));
  const format = (line: string[]) =>
    line
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join('  ')
      .trimEnd();
  const rule = widths.map((width) => '-'.repeat(width)).join('  ');
  const notes = results.flatMap((result) => result.notes.map((note) => `  ${result.name}: ${note}`));
  return [
    format(lines[0]!),
    rule,
    ...lines.slice(1).map(format),
    ...(notes.length > 0 ? ['', 'notes:', ...notes] : []),
  ].join('\n');
};
