import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { runFinetuneBench } from '../bench/finetune.bench.js';
import { textureSourcesAvailable } from '../support/finetune/texture-dataset.js';
import { REPO_ROOT } from '../support/finetune/trainer-harness.js';

const run = promisify(execFile);

describe('linear probe on a real backbone and real photographs', () => {
  it('the ONNX conversion of the MobileNetV2 nsfwjs ships matches the original run by TensorFlow.js on fixed inputs', async () => {
    const { stdout } = await run(process.execPath, [path.join(REPO_ROOT, 'dist', 'test', 'support', 'finetune', 'check-backbone-conversion.js')], { maxBuffer: 1 << 20 });
    const r = JSON.parse(stdout.trim().split('\n')[0]!) as { poolLength: number[]; outputLength: number[]; poolMaxAbsDiff: number; poolMaxAbs: number; outputMaxAbsDiff: number };
    expect(r.poolLength).toEqual([2560, 2560]);
    expect(r.outputLength).toEqual([10, 10]);
    // Pooled features reach ~5; float32 reordering differs by ~1e-5.
    expect(r.poolMaxAbs).toBeGreaterThan(0.1);
    expect(r.poolMaxAbsDiff).toBeLessThan(1e-3);
    expect(r.outputMaxAbsDiff).toBeLessThan(1e-4);
  });

  const withTextures = textureSourcesAvailable() ? it : it.skip;
  if (!textureSourcesAvailable()) console.warn('SKIPPED: python3-skimage is not installed; .ci/run installs it for the real-photograph test');
  withTextures('held-out texture patches: the probe beats a raw-pixel baseline with the same head and split', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-real-probe-'));
    try {
      const r = await runFinetuneBench({ trainPerClass: 14, testPerClass: 8, threads: 2, dir });
      expect(r.verification.argmaxAgreement).toBe(1);
      expect(r.probe.accuracy).toBeGreaterThanOrEqual(0.9);
      expect(r.probe.accuracy).toBeGreaterThan(r.rawPixelBaseline.accuracy);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
