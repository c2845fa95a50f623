/**
 * What every benchmark is given: the run's options, its PostgreSQL, and the archive data set, which
 * is seeded (and projected) once and shared by the benchmarks that read it.
 */
import type { CpuUse } from './measure.ts';
import type { BenchPostgres } from './postgres.ts';
import type { ChildSpec, ProcessOptions } from './processes.ts';
import type { DatasetSummary } from './seed.ts';

export interface BenchOptions {
  readonly events: number;
  readonly quick: boolean;
  /** Seconds per load-test measurement (each concurrency, each target). */
  readonly loadSeconds: number;
  readonly warmupSeconds: number;
  /** calltrail's log level in the measured processes; `info` is the production default. */
  readonly logLevel: string;
}

export interface Dataset {
  /** The database holding the event store and the read models, as the embedded default does. */
  readonly url: string;
  readonly summary: DatasetSummary;
  /** Set once the projector has caught up (by the projection benchmark, or on demand). */
  projection?: ProjectionCatchUp;
}

export interface ProjectionCatchUp {
  readonly seconds: number;
  /** When each projection's checkpoint reached the head. */
  readonly finishedAfter: Readonly<Record<string, number>>;
  readonly cpu: CpuUse;
}

export interface BenchContext {
  readonly options: BenchOptions;
  readonly postgres: BenchPostgres;
  readonly processes: ProcessOptions;
  /** The seeded archive (seeded on first use). */
  dataset(): Promise<Dataset>;
  /** The seeded archive with its read models caught up. */
  projectedDataset(): Promise<Dataset & { projection: ProjectionCatchUp }>;
  /** A line of progress on stderr. */
  progress(message: string): void;
}

export const webhookSecret = 'bench-webhook-secret-0123456789abcdef';
export const apiToken = 'bench-api-token-0123456789abcdef';

/** The calltrail app as every benchmark measures it: both stores in the one database at `url`. */
export const appSpec = (url: string, options: BenchOptions): Extract<ChildSpec, { role: 'app' }> => ({
  role: 'app',
  eventStoreUrl: url,
  databaseUrl: url,
  logLevel: options.logLevel,
  webhookSecret,
  apiToken,
});
