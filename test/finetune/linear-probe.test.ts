import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ModelInputSchema } from '@flotilla/contracts';
import sharp from 'sharp';
import { decodeModel } from '../../apps/agent/src/finetune/onnx-proto.js';
import { LABELS_METADATA_KEY } from '../../apps/agent/src/finetune/linear-probe.js';
import type { LinearProbeSpec } from '../../apps/agent/src/finetune/linear-probe-spec.js';
import { buildTinyBackbone, writeColourDataset } from '../support/finetune/onnx-backbone.js';
import { inferImage, startServer, trainInChild } from '../support/finetune/trainer-harness.js';

const INPUT = ModelInputSchema.parse({ width: 32, height: 32, layout: 'NCHW', scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] });

describe('linear-probe trainer', () => {
  let dir: string;
  let dataset: string;
  let base: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-linear-probe-'));
    dataset = path.join(dir, 'dataset');
    await writeColourDataset(dataset, 24);
    base = path.join(dir, 'base.onnx');
    await writeFile(base, buildTinyBackbone());
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const spec = (out: string, over: Partial<LinearProbeSpec> = {}): LinearProbeSpec => ({
    job: 'site-tuning',
    datasetPath: dataset,
    datasetFormat: 'imagefolder',
    baseModelPath: base,
    input: INPUT,
    hyperparameters: { epochs: 60, seed: 3 },
    holdoutFraction: 0.25,
    outputDir: path.join(dir, out),
    outputModel: 'bridge-defects',
    threads: 1,
    ...over,
  });

  it('trains a head on the frozen backbone, exports one image -> probabilities graph that ONNX Runtime agrees with, and reports phases', async () => {
    const { outcome, events, metrics } = await trainInChild(spec('run-a'));
    expect(outcome).toMatchObject({ end: 'succeeded', exitCode: 0 });
    const metricsFile = metrics!;
    const modelPath = path.join(dir, 'run-a', 'model.onnx');

    expect(metricsFile.labels).toEqual(['corrosion', 'crack', 'spalling']);
    expect(metricsFile.embedding.tensor).toBe('features');
    expect(metricsFile.embedding.reason).toMatch(/final Gemm/);
    expect(metricsFile.holdout.examples).toBeGreaterThan(5);
    expect(metricsFile.metrics.accuracy).toBeGreaterThanOrEqual(0.9);
    expect(metricsFile.verification.argmaxAgreement).toBe(1);
    expect(metricsFile.verification.maxAbsDifference).toBeLessThan(1e-3);
    expect(metricsFile.datasetFingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
    const counted = Object.values(metricsFile.counts.train).reduce((a, b) => a + b, 0) + Object.values(metricsFile.counts.validation).reduce((a, b) => a + b, 0) + metricsFile.holdout.examples;
    expect(counted).toBe(72);
    expect(events.filter((e) => e.event === 'progress').map((e) => (e as { phase?: string }).phase)).toEqual(expect.arrayContaining(['Preparing', 'Training', 'Evaluating']));
    expect(events.at(-1)).toMatchObject({ event: 'progress', progress: 1 });

    const model = decodeModel(await readFile(modelPath));
    expect(JSON.parse(model.metadata_props!.find((p) => p.key === LABELS_METADATA_KEY)!.value)).toEqual(metricsFile.labels);
    expect(model.graph.input.map((i) => i.name)).toEqual(['image']);
    expect(model.graph.output.map((o) => o.name)).toEqual(['probabilities']);
    // The backbone's own classifier (Gemm + Softmax) is pruned away.
    expect(model.graph.node.map((n) => n.name)).not.toContain('fc');
    expect(await readFile(path.join(dir, 'run-a', 'labels.txt'), 'utf8')).toBe('corrosion\ncrack\nspalling\n');
    const config = await readFile(path.join(dir, 'run-a', 'triton', 'bridge-defects', 'config.pbtxt'), 'utf8');
    expect(config).toContain('platform: "onnxruntime_onnx"');
    expect(config).toContain('dims: [ -1, 32, 32, 3 ]');
    expect(config).toContain('label_filename: "labels.txt"');
  });

  it('is reproducible: the same seed and data give the same model bytes', async () => {
    await trainInChild(spec('run-b'));
    expect(Buffer.compare(await readFile(path.join(dir, 'run-a', 'model.onnx')), await readFile(path.join(dir, 'run-b', 'model.onnx')))).toBe(0);
  });

  it('is served by the builtin inference server from its Triton layout and classifies a new image', async () => {
    const server = await startServer(path.join(dir, 'run-a', 'triton'));
    try {
      // Fresh, clearly coloured images: "spalling" is green, "corrosion" blue.
      for (const [rgb, expected] of [[{ r: 70, g: 190, b: 70 }, 2], [{ r: 50, g: 70, b: 210 }, 0]] as const) {
        const px = await sharp({ create: { width: 32, height: 32, channels: 3, background: rgb } }).raw().toBuffer();
        const probs = await inferImage(server.url, 'bridge-defects', px, 32);
        expect(probs).toHaveLength(3);
        expect(probs.indexOf(Math.max(...probs))).toBe(expected);
      }
    } finally {
      await server.stop();
    }
  });

  it('fails with a failure file and exit code naming an undecodable image', async () => {
    const broken = path.join(dir, 'broken');
    await writeColourDataset(broken, 4);
    await writeFile(path.join(broken, 'train', 'crack', 'not-an-image.png'), 'plain text');
    const failed = await trainInChild(spec('x1', { datasetPath: broken }));
    expect(failed.outcome).toMatchObject({ end: 'failed', exitCode: 1 });
    expect(failed.outcome.failure).toMatch(/not-an-image\.png cannot be decoded/);
    expect(await readFile(path.join(dir, 'x1', 'failure'), 'utf8')).toMatch(/not-an-image\.png/);
  });
});
