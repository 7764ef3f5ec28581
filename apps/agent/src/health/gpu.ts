/** A MIG instance: a slice of one physical GPU that is scheduled on its own. */
export interface MigDevice {
  parentIndex: number;
  parentUuid: string;
  /** Index of the instance within its GPU, as `nvidia-smi -L` numbers it. */
  deviceIndex: number;
  uuid: string;
  /** e.g. `1g.10gb`, `3g.40gb`, `1g.10gb+me`. */
  profile: string;
  /** Nominal memory from the profile name (`10gb` = 10 GiB); null if the name has none. */
  memoryTotalBytes: number | null;
}

/**
 * One physical GPU as the agent saw it. Readings the driver cannot give
 * (`[N/A]`, `[Not Supported]`; utilisation on a GPU in MIG mode) are null,
 * never zero, so "idle" and "unknown" stay apart.
 */
export interface GpuDevice {
  index: number;
  uuid: string;
  product: string;
  memoryTotalBytes: number | null;
  memoryUsedBytes: number | null;
  /** 0..1. */
  utilisation: number | null;
  temperatureC: number | null;
  powerW: number | null;
  migDevices: MigDevice[];
}

/** What a GPU source found; `errors` describe what it could not read. */
export interface GpuInventory {
  gpus: GpuDevice[];
  errors: string[];
}

/** Where GPU readings come from (nvidia-smi, a DCGM exporter, nothing). */
export interface GpuSource {
  read(signal: AbortSignal): Promise<GpuInventory>;
}

export const MIB = 1024 * 1024;
export const GIB = 1024 * MIB;

/** Nominal memory of a MIG profile such as `2g.20gb` or `1g.10gb+me`. */
export function migProfileMemoryBytes(profile: string): number | null {
  const m = /^\d+g\.(\d+)gb/i.exec(profile);
  return m ? Number(m[1]) * GIB : null;
}

/** For hosts without GPUs, or where GPU discovery is switched off. */
export class NoGpuSource implements GpuSource {
  async read(): Promise<GpuInventory> {
    return { gpus: [], errors: [] };
  }
}
