import { MIB, migProfileMemoryBytes, type GpuDevice, type GpuInventory, type GpuSource, type MigDevice } from './gpu.js';
import { parsePrometheusText } from './prometheus-text.js';
import { scrapeText, type FetchLike } from './scrape.js';

const FIELDS = {
  util: 'DCGM_FI_DEV_GPU_UTIL',
  fbUsed: 'DCGM_FI_DEV_FB_USED',
  fbFree: 'DCGM_FI_DEV_FB_FREE',
  fbReserved: 'DCGM_FI_DEV_FB_RESERVED',
  temp: 'DCGM_FI_DEV_GPU_TEMP',
  power: 'DCGM_FI_DEV_POWER_USAGE',
} as const;
const WANTED = new Set<string>(Object.values(FIELDS));

/**
 * Reads GPUs from a dcgm-exporter scrape. Series carry `gpu`, `UUID` and
 * `modelName` labels; MIG instances carry `GPU_I_ID` and `GPU_I_PROFILE` too
 * (with the parent's UUID), and become MIG devices of that GPU. Framebuffer
 * figures are MiB; total = used + free (+ reserved when exported).
 */
export function parseDcgmMetrics(text: string): GpuInventory {
  const parsed = parsePrometheusText(text);
  const errors = parsed.errors.map((e) => `dcgm-exporter: ${e}`);
  const physical = new Map<string, Map<string, number>>();
  const instances = new Map<string, { uuid: string; gi: string; profile: string; values: Map<string, number> }>();
  const meta = new Map<string, { index: number; product: string }>();

  for (const s of parsed.samples) {
    if (!WANTED.has(s.name)) continue;
    const uuid = s.labels.UUID ?? s.labels.uuid;
    const index = s.labels.gpu;
    if (!uuid || index === undefined || !/^\d+$/.test(index)) {
      errors.push(`dcgm-exporter: ${s.name} without usable gpu/UUID labels`);
      continue;
    }
    if (!meta.has(uuid)) meta.set(uuid, { index: Number(index), product: s.labels.modelName ?? 'unknown' });
    const gi = s.labels.GPU_I_ID;
    if (gi !== undefined && gi !== '') {
      const key = `${uuid}/${gi}`;
      const inst = instances.get(key) ?? { uuid, gi, profile: s.labels.GPU_I_PROFILE ?? '', values: new Map<string, number>() };
      inst.values.set(s.name, s.value);
      instances.set(key, inst);
    } else {
      const values = physical.get(uuid) ?? new Map<string, number>();
      values.set(s.name, s.value);
      physical.set(uuid, values);
    }
  }

  const gpus: GpuDevice[] = [];
  for (const [uuid, m] of meta) {
    const values = physical.get(uuid) ?? new Map<string, number>();
    const used = finite(values.get(FIELDS.fbUsed));
    const free = finite(values.get(FIELDS.fbFree));
    const reserved = finite(values.get(FIELDS.fbReserved)) ?? 0;
    const util = finite(values.get(FIELDS.util));
    const migDevices: MigDevice[] = [...instances.values()]
      .filter((i) => i.uuid === uuid)
      .sort((a, b) => Number(a.gi) - Number(b.gi))
      .map((i, n) => {
        const iUsed = finite(i.values.get(FIELDS.fbUsed));
        const iFree = finite(i.values.get(FIELDS.fbFree));
        return {
          parentIndex: m.index,
          parentUuid: uuid,
          deviceIndex: n,
          // dcgm-exporter labels MIG series with the parent UUID only.
          uuid: `${uuid}/gi${i.gi}`,
          profile: i.profile,
          memoryTotalBytes: iUsed !== null && iFree !== null ? (iUsed + iFree) * MIB : migProfileMemoryBytes(i.profile),
        };
      });
    gpus.push({
      index: m.index,
      uuid,
      product: m.product,
      memoryTotalBytes: used !== null && free !== null ? (used + free + reserved) * MIB : null,
      memoryUsedBytes: used === null ? null : used * MIB,
      utilisation: util === null ? null : Math.min(1, Math.max(0, util / 100)),
      temperatureC: finite(values.get(FIELDS.temp)),
      powerW: finite(values.get(FIELDS.power)),
      migDevices,
    });
  }
  gpus.sort((a, b) => a.index - b.index);
  return { gpus, errors };
}

function finite(v: number | undefined): number | null {
  return v === undefined || !Number.isFinite(v) ? null : v;
}

export interface DcgmOptions {
  url: string;
  timeoutMs?: number;
  fetch?: FetchLike;
}

/** Scrapes a dcgm-exporter endpoint; failures are reported, not thrown. */
export class DcgmExporterSource implements GpuSource {
  private readonly fetchFn: FetchLike;
  private readonly timeoutMs: number;

  constructor(private readonly opts: DcgmOptions) {
    this.fetchFn = opts.fetch ?? ((input, init) => fetch(input, init));
    this.timeoutMs = opts.timeoutMs ?? 5_000;
  }

  async read(signal: AbortSignal): Promise<GpuInventory> {
    const text = await scrapeText(this.fetchFn, this.opts.url, this.timeoutMs, signal);
    if (typeof text !== 'string') return { gpus: [], errors: [`dcgm-exporter ${this.opts.url}: ${text.error}`] };
    return parseDcgmMetrics(text);
  }
}
