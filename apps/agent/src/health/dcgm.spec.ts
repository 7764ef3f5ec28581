import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDcgmMetrics } from './dcgm.js';
import { GIB, MIB } from './gpu.js';

describe('parseDcgmMetrics', () => {
  it('reads each GPU of a dcgm-exporter scrape', () => {
    const text = readFileSync(join(process.cwd(), 'test', 'fixtures', 'nvidia-smi', 'dcgm-exporter-l40s.prom'), 'utf8');

    const { gpus, errors } = parseDcgmMetrics(text);

    expect(errors).toEqual([]);
    expect(gpus).toHaveLength(2);
    expect(gpus[0]).toMatchObject({
      index: 0,
      product: 'NVIDIA L40S',
      utilisation: 0.76,
      memoryUsedBytes: 18342 * MIB,
      memoryTotalBytes: (18342 + 27149 + 577) * MIB,
      temperatureC: 58,
      powerW: 261.329,
      migDevices: [],
    });
    expect(gpus[1]).toMatchObject({ index: 1, utilisation: 0, memoryUsedBytes: 0 });
  });

  it('reads MIG instances from GPU_I_ID and GPU_I_PROFILE labels under their parent GPU', () => {
    const labels = (gi?: string, profile?: string): string =>
      `gpu="0",UUID="GPU-abc",modelName="NVIDIA A100-SXM4-80GB"${gi ? `,GPU_I_ID="${gi}",GPU_I_PROFILE="${profile}"` : ''}`;
    const text = [
      `DCGM_FI_DEV_GPU_TEMP{${labels()}} 40`,
      `DCGM_FI_DEV_FB_USED{${labels('1', '3g.40gb')}} 1000`,
      `DCGM_FI_DEV_FB_FREE{${labels('1', '3g.40gb')}} 39000`,
      `DCGM_FI_DEV_FB_USED{${labels('9', '1g.10gb')}} 0`,
    ].join('\n');

    const { gpus } = parseDcgmMetrics(text);

    expect(gpus).toHaveLength(1);
    expect(gpus[0]?.temperatureC).toBe(40);
    expect(gpus[0]?.migDevices).toEqual([
      expect.objectContaining({ profile: '3g.40gb', uuid: 'GPU-abc/gi1', memoryTotalBytes: 40000 * MIB }),
      expect.objectContaining({ profile: '1g.10gb', uuid: 'GPU-abc/gi9', memoryTotalBytes: 10 * GIB }),
    ]);
  });

  it('reports series without gpu or UUID labels and malformed lines', () => {
    const { gpus, errors } = parseDcgmMetrics('DCGM_FI_DEV_GPU_TEMP{Hostname="x"} 40\nDCGM_FI_DEV_GPU_UTIL{gpu="0" 1\n');
    expect(gpus).toEqual([]);
    expect(errors).toEqual([expect.stringContaining('line 2'), 'dcgm-exporter: DCGM_FI_DEV_GPU_TEMP without usable gpu/UUID labels']);
  });
});
