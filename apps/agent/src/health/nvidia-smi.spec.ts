import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GIB, MIB } from './gpu.js';
import { mergeGpuOutputs, parseGpuList, parseGpuQuery } from './nvidia-smi.js';

const fixture = (name: string): string => readFileSync(join(process.cwd(), 'test', 'fixtures', 'nvidia-smi', name), 'utf8');

describe('parseGpuQuery', () => {
  it('reads all eight H100s with memory in bytes, utilisation as a ratio, temperature and power', () => {
    const { gpus, errors } = parseGpuQuery(fixture('h100-8x.query.csv'));

    expect(errors).toEqual([]);
    expect(gpus).toHaveLength(8);
    expect(gpus.map((g) => g.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(gpus[0]).toEqual({
      index: 0,
      uuid: 'GPU-4dad2986-ce83-4960-aa06-e9ab85a0bcc1',
      product: 'NVIDIA H100 80GB HBM3',
      memoryTotalBytes: 81559 * MIB,
      memoryUsedBytes: 71234 * MIB,
      utilisation: 0.97,
      temperatureC: 64,
      powerW: 612.45,
      migDevices: [],
    });
    expect(gpus.every((g) => g.product === 'NVIDIA H100 80GB HBM3' && (g.memoryTotalBytes ?? 0) / GIB > 79)).toBe(true);
  });

  it('reads two L40S with 48 GB class memory', () => {
    const { gpus, errors } = parseGpuQuery(fixture('l40s-2x.query.csv'));

    expect(errors).toEqual([]);
    expect(gpus.map((g) => [g.product, g.memoryTotalBytes, g.utilisation, g.powerW])).toEqual([
      ['NVIDIA L40S', 46068 * MIB, 0.76, 261.33],
      ['NVIDIA L40S', 46068 * MIB, 0, 34.98],
    ]);
  });

  it('turns [N/A] utilisation of a GPU in MIG mode into null, not zero', () => {
    const { gpus, errors } = parseGpuQuery(fixture('a100-mig.query.csv'));

    expect(errors).toEqual([]);
    expect(gpus[0]).toMatchObject({ utilisation: null, memoryUsedBytes: 13 * MIB, temperatureC: 34 });
    expect(gpus[1]).toMatchObject({ utilisation: 0 });
  });

  it('turns [N/A] and [Not Supported] readings of a vGPU guest into null without an error', () => {
    const { gpus, errors } = parseGpuQuery(fixture('vgpu-not-supported.query.csv'));

    expect(errors).toEqual([]);
    expect(gpus[0]).toMatchObject({ product: 'GRID A100D-40C', temperatureC: null, powerW: null, utilisation: 0.12 });
  });

  it('finds no GPU and no error in "No devices were found"', () => {
    expect(parseGpuQuery(fixture('no-gpu.txt'))).toEqual({ gpus: [], errors: [] });
  });

  it('reports a driver that is not loaded as one error', () => {
    const { gpus, errors } = parseGpuQuery(fixture('driver-not-loaded.txt'));

    expect(gpus).toEqual([]);
    expect(errors).toEqual([expect.stringMatching(/^nvidia-smi: driver not loaded: NVIDIA-SMI has failed because it couldn't communicate/)]);
  });

  it('reports each malformed line and keeps the readable GPUs', () => {
    const { gpus, errors } = parseGpuQuery(fixture('malformed.query.csv'));

    expect(gpus.map((g) => g.index)).toEqual([0, 3]);
    expect(gpus[1]).toMatchObject({ temperatureC: null, powerW: 16.1 });
    expect(errors).toEqual([
      expect.stringMatching(/^nvidia-smi query line 2: expected 8 fields, got 3/),
      expect.stringMatching(/^nvidia-smi query line 3: bad index, name or uuid/),
      expect.stringMatching(/^nvidia-smi GPU 3 \(GPU-[0-9a-f-]+\): unreadable temperature.gpu=\[Unknown Error\]/),
      expect.stringMatching(/^nvidia-smi query line 5: expected 8 fields, got 1/),
    ]);
  });
});

describe('parseGpuList', () => {
  it('reads MIG instances under their GPU with profile and nominal memory', () => {
    const { gpus, errors } = parseGpuList(fixture('a100-mig.list.txt'));

    expect(errors).toEqual([]);
    expect(gpus.map((g) => [g.index, g.migDevices.length])).toEqual([
      [0, 4],
      [1, 0],
    ]);
    expect(gpus[0]?.migDevices.map((m) => [m.deviceIndex, m.profile, m.memoryTotalBytes])).toEqual([
      [0, '3g.40gb', 40 * GIB],
      [1, '2g.20gb', 20 * GIB],
      [2, '1g.10gb', 10 * GIB],
      [3, '1g.10gb', 10 * GIB],
    ]);
    expect(gpus[0]?.migDevices[0]).toMatchObject({ parentIndex: 0, parentUuid: gpus[0]?.uuid, uuid: expect.stringMatching(/^MIG-[0-9a-f-]{36}$/) });
  });

  it('reads the R470 form of MIG UUIDs', () => {
    const { gpus, errors } = parseGpuList(fixture('a100-mig-r470.list.txt'));

    expect(errors).toEqual([]);
    expect(gpus[0]?.migDevices.map((m) => [m.profile, m.uuid.endsWith('/7/0') || m.uuid.endsWith('/8/0') || m.uuid.endsWith('/2/0')])).toEqual([
      ['1g.5gb', true],
      ['1g.5gb', true],
      ['3g.20gb', true],
    ]);
  });

  it('lists every H100 without MIG devices', () => {
    const { gpus } = parseGpuList(fixture('h100-8x.list.txt'));
    expect(gpus).toHaveLength(8);
    expect(gpus.every((g) => g.migDevices.length === 0)).toBe(true);
  });

  it('reports a MIG line before any GPU and unrecognized lines', () => {
    const { gpus, errors } = parseGpuList('  MIG 1g.10gb Device 0: (UUID: MIG-x)\nGPU zero: broken\n');
    expect(gpus).toEqual([]);
    expect(errors).toEqual([expect.stringContaining('MIG device before any GPU'), expect.stringContaining('unrecognized: "GPU zero: broken"')]);
  });

  it('reports the driver failure too', () => {
    expect(parseGpuList(fixture('driver-not-loaded.txt')).errors).toEqual([expect.stringContaining('driver not loaded')]);
  });
});

describe('mergeGpuOutputs', () => {
  it('attaches MIG instances to the queried GPU with the same UUID', () => {
    const merged = mergeGpuOutputs(parseGpuQuery(fixture('a100-mig.query.csv')), parseGpuList(fixture('a100-mig.list.txt')));

    expect(merged.errors).toEqual([]);
    expect(merged.gpus.map((g) => [g.index, g.migDevices.map((m) => m.profile)])).toEqual([
      [0, ['3g.40gb', '2g.20gb', '1g.10gb', '1g.10gb']],
      [1, []],
    ]);
  });

  it('keeps a GPU that only the list knows, with unknown readings', () => {
    const merged = mergeGpuOutputs({ gpus: [], errors: [] }, parseGpuList(fixture('l40s-2x.list.txt')));
    expect(merged.gpus).toHaveLength(2);
    expect(merged.gpus[0]).toMatchObject({ product: 'NVIDIA L40S', memoryTotalBytes: null, utilisation: null });
  });
});
