import type { HostProbe } from './host.js';
import { HostSampler } from './host.js';

function probe(overrides: Partial<HostProbe> = {}): HostProbe & { times: Array<{ user: number; nice: number; sys: number; idle: number; irq: number }> } {
  const times = [
    { user: 100, nice: 0, sys: 50, idle: 850, irq: 0 },
    { user: 100, nice: 0, sys: 50, idle: 850, irq: 0 },
  ];
  return {
    times,
    cpus: () => times.map((t) => ({ times: { ...t } })),
    totalmem: () => 16 * 2 ** 30,
    freemem: () => 4 * 2 ** 30,
    statfs: async (path) => (path.startsWith('/data') ? { bsize: 4096, blocks: 1000, bfree: 250 } : { bsize: 4096, blocks: 2000, bfree: 2000 }),
    device: async (path) => (path.startsWith('/data') ? 1 : 2),
    ...overrides,
  };
}

describe('HostSampler', () => {
  it('measures CPU busy share between two samples', async () => {
    const p = probe();
    const sampler = new HostSampler([], p);
    const first = await sampler.sample();
    expect(first.reading.cpuUtilisation).toBeCloseTo(0.15, 9);
    for (const t of p.times) {
      t.user += 60;
      t.idle += 40;
    }

    const second = await sampler.sample();

    expect(second.reading.cpuUtilisation).toBeCloseTo(0.6, 9);
    expect(second.reading.cpuCores).toBe(2);
  });

  it('counts memory not available as used', async () => {
    const { reading } = await new HostSampler([], probe()).sample();
    expect(reading).toMatchObject({ memoryTotalBytes: 16 * 2 ** 30, memoryUsedBytes: 12 * 2 ** 30 });
  });

  it('counts a filesystem holding two agent directories once', async () => {
    const { reading, errors } = await new HostSampler(['/data/state', '/data/cache', '/other'], probe()).sample();

    expect(errors).toEqual([]);
    expect(reading.disks).toEqual([
      { path: '/data/state', usedBytes: 750 * 4096, totalBytes: 1000 * 4096 },
      { path: '/data/cache', usedBytes: 750 * 4096, totalBytes: 1000 * 4096 },
      { path: '/other', usedBytes: 0, totalBytes: 2000 * 4096 },
    ]);
    expect(reading).toMatchObject({ diskUsedBytes: 750 * 4096, diskTotalBytes: 3000 * 4096 });
  });

  it('reports a directory it cannot measure and still measures the rest', async () => {
    const p = probe({
      statfs: async (path) => {
        if (path === '/gone') throw Object.assign(new Error(`ENOENT: no such file or directory, statfs '${path}'`), { code: 'ENOENT' });
        return { bsize: 1, blocks: 10, bfree: 5 };
      },
    });

    const { reading, errors } = await new HostSampler(['/gone', '/ok'], p).sample();

    expect(errors).toEqual([expect.stringMatching(/^disk \/gone: ENOENT/)]);
    expect(reading.disks.map((d) => d.path)).toEqual(['/ok']);
  });
});
