/**
 * The archive data set the read-side benchmarks share: N seeded events in one database (event store
 * and read models together, as the embedded default keeps them), and the projector's catch-up over
 * them, timed in a process of its own.
 */
import { migrateReadModels, openDatabase } from '../src/database/database.ts';
import type { BenchPostgres } from './postgres.ts';
import type { Dataset, ProjectionCatchUp } from './context.ts';
import { startCpuMeter } from './measure.ts';
import { startMeasuredProcess, type ProcessOptions } from './processes.ts';
import { checkSeedMatchesIngest } from './seed-fidelity.ts';
import { seedArchive } from './seed.ts';

export const seedDataset = async (
  postgres: BenchPostgres,
  events: number,
  progress: (message: string) => void,
): Promise<Dataset> => {
  progress('seeding: checking the seed against the real webhook');
  await checkSeedMatchesIngest(await postgres.createDatabase('seed_fidelity'));
  const url = await postgres.createDatabase('archive');
  const database = openDatabase(url, { max: 1 });
  try {
    await migrateReadModels(database);
  } finally {
    await database.close();
  }
  let reported = 0;
  const summary = await seedArchive(url, events, (done) => {
    if (done - reported >= events / 10 || done === events) {
      reported = done;
      progress(`seeding: ${done.toLocaleString('en-US')} / ${events.toLocaleString('en-US')} events`);
    }
  });
  progress(
    `seeded ${summary.events.toLocaleString('en-US')} events of ${summary.calls.toLocaleString('en-US')} calls ` +
      `in ${summary.seedSeconds.toFixed(1)} s`,
  );
  return { url, summary };
};

/** Runs every projection from an empty read model until its checkpoint reaches the store's head. */
export const catchUpProjections = async (
  postgres: BenchPostgres,
  dataset: Dataset,
  processes: ProcessOptions,
  logLevel: string,
  progress: (message: string) => void,
): Promise<ProjectionCatchUp> => {
  const projector = await startMeasuredProcess(
    { role: 'projector', eventStoreUrl: dataset.url, databaseUrl: dataset.url, logLevel },
    processes,
  );
  try {
    progress(`projection: catching up ${dataset.summary.events.toLocaleString('en-US')} events`);
    const cpu = startCpuMeter(projector.pid, postgres.pid);
    const result = await projector.request<{ seconds: number; finishedAfter: Record<string, number> }>({
      command: 'catch-up',
    });
    const catchUp = { ...result, cpu: cpu.stop() };
    progress(`projection: caught up in ${catchUp.seconds.toFixed(1)} s`);
    return catchUp;
  } finally {
    await projector.stop();
  }
};
