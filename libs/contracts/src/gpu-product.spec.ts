// The spec reads recorded nvidia-smi output from the repository; the module itself does no I/O.
// eslint-disable-next-line no-restricted-imports
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { GPU_PRODUCT_PATTERN, gpuProductLabelValue, GpuProductSchema, isLabelValue, sameGpuProduct } from './gpu-product.js';

/** Product names as nvidia-smi printed them on real machines (test/fixtures/nvidia-smi). */
function recordedProducts(): string[] {
  const dir = path.join(import.meta.dirname, '..', '..', '..', 'test', 'fixtures', 'nvidia-smi');
  const names = new Set<string>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.query.csv'))) {
    for (const line of readFileSync(path.join(dir, file), 'utf8').split('\n')) {
      const name = line.split(',')[1]?.trim();
      if (name && line.split(',').length >= 8) names.add(name);
    }
  }
  return [...names].sort();
}

describe('gpuProductLabelValue (GPU Feature Discovery\'s rule for nvidia.com/gpu.product)', () => {
  it.each([
    ['NVIDIA H100 80GB HBM3', 'NVIDIA-H100-80GB-HBM3'],
    ['NVIDIA L40S', 'NVIDIA-L40S'],
    ['Tesla T4', 'Tesla-T4'],
    ['NVIDIA A100-SXM4-80GB', 'NVIDIA-A100-SXM4-80GB'],
    ['NVIDIA GeForce RTX 4090', 'NVIDIA-GeForce-RTX-4090'],
    // Characters outside [A-Za-z0-9-_. ] are dropped, runs of spaces become one dash.
    ['  NVIDIA   RTX  A6000 ', 'NVIDIA-RTX-A6000'],
    ['NVIDIA H100 (80GB)', 'NVIDIA-H100-80GB'],
    ['NVIDIA\tH100', 'NVIDIAH100'],
  ])('%j -> %j', (product, label) => {
    expect(gpuProductLabelValue(product)).toBe(label);
  });

  it('is idempotent, so the label form of a label form is itself', () => {
    for (const p of ['NVIDIA H100 80GB HBM3', 'NVIDIA-H100-80GB-HBM3', 'Tesla T4', 'a - b']) {
      expect(gpuProductLabelValue(gpuProductLabelValue(p))).toBe(gpuProductLabelValue(p));
    }
  });

  it('turns every product name recorded from nvidia-smi into a valid node label value', () => {
    const products = recordedProducts();
    expect(products).toEqual(expect.arrayContaining(['NVIDIA H100 80GB HBM3', 'NVIDIA L40S']));
    for (const p of products) {
      expect(isLabelValue(gpuProductLabelValue(p))).toBe(true);
      expect(GpuProductSchema.safeParse(p).success).toBe(true);
    }
  });
});

describe('sameGpuProduct', () => {
  it.each([
    ['NVIDIA H100 80GB HBM3', 'NVIDIA H100 80GB HBM3', true],
    ['NVIDIA H100 80GB HBM3', 'NVIDIA-H100-80GB-HBM3', true],
    ['NVIDIA L40S', 'NVIDIA-L40S', true],
    // Short forms and other products are different names: no node carries them as its product label.
    ['NVIDIA H100 80GB HBM3', 'H100', false],
    ['NVIDIA H100 PCIe', 'NVIDIA-H100-80GB-HBM3', false],
    ['NVIDIA L40S', 'NVIDIA L4', false],
    // Labels are case-sensitive, so matching is too: a placement selects a spoke only if its pods could schedule there.
    ['NVIDIA L40S', 'nvidia l40s', false],
    ['', '', false],
  ])('%j and %j: %s', (a, b, expected) => {
    expect(sameGpuProduct(a, b)).toBe(expected);
  });
});

describe('GpuProductSchema (how a policy may name a product)', () => {
  it('accepts both forms of a full product name', () => {
    expect(GpuProductSchema.safeParse('NVIDIA H100 80GB HBM3').success).toBe(true);
    expect(GpuProductSchema.safeParse('NVIDIA-H100-80GB-HBM3').success).toBe(true);
  });

  it.each([
    ['', 'empty'],
    ['NVIDIA H100 (80GB)', 'a character GFD would drop'],
    ['-NVIDIA-H100', 'starts with a dash'],
    ['NVIDIA H100 ', 'ends with a space'],
    [`NVIDIA ${'X'.repeat(57)}`, '64 characters'],
  ])('rejects %j (%s) with a message saying what a product name must be', (product) => {
    const result = GpuProductSchema.safeParse(product);
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toContain('must be the full GPU product name as nvidia-smi reports it ("NVIDIA H100 80GB HBM3")');
  });

  it('only admits names whose label form is a valid Kubernetes label value', () => {
    const alphabet = 'aZ09-_. ';
    let checked = 0;
    // Every string of up to 4 characters over an alphabet with each kind of character.
    const grow = (prefix: string): void => {
      if (GPU_PRODUCT_PATTERN.test(prefix)) {
        checked++;
        expect(isLabelValue(gpuProductLabelValue(prefix))).toBe(true);
      }
      if (prefix.length < 4) for (const c of alphabet) grow(prefix + c);
    };
    grow('');
    expect(checked).toBeGreaterThan(500);
  });
});
