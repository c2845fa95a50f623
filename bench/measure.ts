/**
 * Measuring helpers: latency percentiles, CPU time of a process and of the whole machine (Linux
 * `/proc`, where the benchmarks run; elsewhere the CPU figures are simply absent), and the machine
 * description every result file carries.
 */
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';

export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  readonly maxMs: number;
}

/** Nearest-rank percentile of an ascending array. */
const percentile = (sorted: Float64Array, fraction: number): number =>
  sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)]!;

export const summarizeLatencies = (samples: readonly number[]): LatencySummary => {
  const sorted = Float64Array.from(samples).sort();
  const total = sorted.reduce((sum, value) => sum + value, 0);
  return {
    count: sorted.length,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    meanMs: sorted.length === 0 ? Number.NaN : total / sorted.length,
    maxMs: sorted.length === 0 ? Number.NaN : sorted[sorted.length - 1]!,
  };
};

const clockTicksPerSecond = 100;

/** User + system CPU seconds a process has used so far; undefined off Linux. */
export const processCpuSeconds = (pid: number): number | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond;
  } catch {
    return undefined;
  }
};

/** Busy and total CPU seconds of the machine (all cores) so far; undefined off Linux. */
export const machineCpuSeconds = (): { busy: number; total: number } | undefined => {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const values = line.trim().split(/\s+/).slice(1).map(Number);
    const total = values.reduce((sum, value) => sum + value, 0);
    const idle = (values[3] ?? 0) + (values[4] ?? 0);
    return { busy: (total - idle) / clockTicksPerSecond, total: total / clockTicksPerSecond };
  } catch {
    return undefined;
  }
};

/** CPU seconds so far of each process of a PostgreSQL server: the postmaster and its children. */
const postgresProcessesCpu = (postmasterPid: number): Map<number, number> => {
  const cpu = new Map<number, number>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return cpu;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const pid = Number(entry);
      if (pid !== postmasterPid && Number(fields[1]) !== postmasterPid) continue;
      cpu.set(pid, (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond);
    } catch {
      // Gone between listing and reading.
    }
  }
  return cpu;
};

export interface CpuUse {
  readonly wallSeconds: number;
  /** CPU seconds of the measured process. */
  readonly processSeconds: number | undefined;
  /** CPU seconds of the benchmark's PostgreSQL, all its processes (backends included). */
  readonly postgresSeconds: number | undefined;
  /** Busy CPU seconds of the whole machine: also the load generator and anything else running. */
  readonly machineSeconds: number | undefined;
  /** The same as cores busy on average (1.0 = one core the whole time). */
  readonly processCores: number | undefined;
  readonly postgresCores: number | undefined;
  readonly machineCores: number | undefined;
}

/** CPU microseconds per unit of work (event, request, row): steadier than rates on a shared machine. */
export const cpuMicrosPer = (seconds: number | undefined, units: number): number | undefined =>
  seconds === undefined || units === 0 ? undefined : Math.round((seconds / units) * 1e8) / 100;

export interface CpuMeter {
  /** Stops sampling and returns what was used since the start. */
  stop(): CpuUse;
}

const samplingIntervalMs = 200;

/**
 * Measures the CPU used by `pid`, by the PostgreSQL server and by the machine from now on. Both
 * are sampled while running, because a process's time is gone from `/proc` once it exits (a
 * backend whose connection closes, the measured process itself); each process counts up to its
 * last sample. Off Linux every figure is undefined.
 */
export const startCpuMeter = (pid: number | undefined, postmasterPid: number | undefined): CpuMeter => {
  // Measuring this very process: its CPU from `process.cpuUsage` (microseconds, not clock ticks),
  // less what the meter's own sampling costs. Each sample reads `/proc/<pid>/stat` of every process
  // on the machine, milliseconds each time, which would otherwise be charged to the work measured
  // and grow with whatever else runs on the machine.
  const self = pid === process.pid;
  let samplingMicros = 0;
  const postgresNow = (): Map<number, number> => {
    if (postmasterPid === undefined) return new Map();
    const before = self ? process.cpuUsage() : undefined;
    const cpu = postgresProcessesCpu(postmasterPid);
    if (before !== undefined) {
      const used = process.cpuUsage(before);
      samplingMicros += used.user + used.system;
    }
    return cpu;
  };
  const started = performance.now();
  const machineStart = machineCpuSeconds();
  const postgresStart = postgresNow();
  const postgresLatest = new Map(postgresStart);
  const selfStart = self ? process.cpuUsage() : undefined;
  samplingMicros = 0;
  const processStart = pid === undefined || self ? undefined : processCpuSeconds(pid);
  let processLatest = processStart;
  const sample = () => {
    if (pid !== undefined && !self) processLatest = processCpuSeconds(pid) ?? processLatest;
    for (const [processId, seconds] of postgresNow()) postgresLatest.set(processId, seconds);
  };
  const timer = setInterval(sample, samplingIntervalMs);
  timer.unref();
  return {
    stop: () => {
      clearInterval(timer);
      const selfUsed = selfStart === undefined ? undefined : process.cpuUsage(selfStart);
      const samplingUsed = samplingMicros;
      sample();
      const wallSeconds = (performance.now() - started) / 1000;
      const machineEnd = machineCpuSeconds();
      const processSeconds =
        selfUsed !== undefined
          ? Math.max(0, selfUsed.user + selfUsed.system - samplingUsed) / 1e6
          : processStart === undefined || processLatest === undefined
            ? undefined
            : processLatest - processStart;
      let postgres = 0;
      for (const [processId, seconds] of postgresLatest)
        postgres += seconds - (postgresStart.get(processId) ?? 0);
      const postgresSeconds = postgresLatest.size === 0 ? undefined : postgres;
      const machineSeconds =
        machineStart === undefined || machineEnd === undefined
          ? undefined
          : machineEnd.busy - machineStart.busy;
      const cores = (seconds: number | undefined) =>
        seconds === undefined ? undefined : Math.round((seconds / wallSeconds) * 100) / 100;
      return {
        wallSeconds,
        processSeconds,
        postgresSeconds,
        machineSeconds,
        processCores: cores(processSeconds),
        postgresCores: cores(postgresSeconds),
        machineCores: cores(machineSeconds),
      };
    },
  };
};

export interface MachineDescription {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly platform: string;
  readonly loadAverage: readonly number[];
}

export const describeMachine = (): MachineDescription => {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    cpuModel = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpuModel;
  } catch {
    // os.cpus() stands in.
  }
  return {
    cpuModel,
    cores: os.availableParallelism(),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    loadAverage: os.loadavg().map((load) => Math.round(load * 100) / 100),
  };
};

export const mib = (bytes: number): number => Math.round((bytes / 2 ** 20) * 10) / 10;
