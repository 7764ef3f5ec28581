import { cpus, freemem, totalmem, type CpuInfo } from 'node:os';
import { stat, statfs } from 'node:fs/promises';

export interface DiskUsage {
  path: string;
  usedBytes: number;
  totalBytes: number;
}

export interface HostReading {
  cpuCores: number;
  /** 0..1 over the interval since the previous sample (since boot for the first). */
  cpuUtilisation: number;
  memoryUsedBytes: number;
  memoryTotalBytes: number;
  /** One entry per configured path. */
  disks: DiskUsage[];
  /** Summed over distinct filesystems, so two directories on one disk count once. */
  diskUsedBytes: number;
  diskTotalBytes: number;
}

/** The operating system calls the sampler uses; injectable for tests. */
export interface HostProbe {
  cpus(): Pick<CpuInfo, 'times'>[];
  totalmem(): number;
  /** Memory available to new work (MemAvailable on Linux, per libuv). */
  freemem(): number;
  statfs(path: string): Promise<{ bsize: number; blocks: number; bfree: number }>;
  /** A filesystem identity for de-duplication. */
  device(path: string): Promise<number>;
}

export const osProbe: HostProbe = {
  cpus,
  totalmem,
  freemem,
  statfs: (path) => statfs(path),
  device: async (path) => (await stat(path)).dev,
};

interface CpuTotals {
  busy: number;
  total: number;
}

function cpuTotals(list: Pick<CpuInfo, 'times'>[]): CpuTotals {
  let busy = 0;
  let total = 0;
  for (const { times } of list) {
    const b = times.user + times.nice + times.sys + times.irq;
    busy += b;
    total += b + times.idle;
  }
  return { busy, total };
}

/**
 * Samples CPU, memory and the disks holding the agent's state and cache
 * directories. CPU utilisation is the busy share of CPU time between two
 * samples; the previous totals are the only state kept.
 */
export class HostSampler {
  private previous: CpuTotals | null = null;

  constructor(
    private readonly paths: readonly string[],
    private readonly probe: HostProbe = osProbe,
  ) {}

  async sample(): Promise<{ reading: HostReading; errors: string[] }> {
    const errors: string[] = [];
    const cpuList = this.probe.cpus();
    const now = cpuTotals(cpuList);
    const base = this.previous ?? { busy: 0, total: 0 };
    this.previous = now;
    const dTotal = now.total - base.total;
    const dBusy = now.busy - base.busy;
    const cpuUtilisation = dTotal > 0 ? Math.min(1, Math.max(0, dBusy / dTotal)) : 0;

    const memoryTotalBytes = this.probe.totalmem();
    const memoryUsedBytes = Math.max(0, memoryTotalBytes - this.probe.freemem());

    const disks: DiskUsage[] = [];
    const seen = new Set<number>();
    let diskUsedBytes = 0;
    let diskTotalBytes = 0;
    for (const path of this.paths) {
      try {
        const fs = await this.probe.statfs(path);
        const usage = { path, usedBytes: (fs.blocks - fs.bfree) * fs.bsize, totalBytes: fs.blocks * fs.bsize };
        disks.push(usage);
        const dev = await this.probe.device(path);
        if (!seen.has(dev)) {
          seen.add(dev);
          diskUsedBytes += usage.usedBytes;
          diskTotalBytes += usage.totalBytes;
        }
      } catch (err) {
        errors.push(`disk ${path}: ${(err as NodeJS.ErrnoException).code ?? ''} ${err instanceof Error ? err.message : String(err)}`.trim());
      }
    }
    return {
      reading: { cpuCores: cpuList.length, cpuUtilisation, memoryUsedBytes, memoryTotalBytes, disks, diskUsedBytes, diskTotalBytes },
      errors,
    };
  }
}
