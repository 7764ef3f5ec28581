/**
 * `npm run bench:finetune`: the linear-probe trainer on a real backbone and
 * real photographs, offline. The MobileNetV2 that the nsfwjs npm package
 * ships is converted to ONNX, texture patches are cut from the photographs
 * python3-skimage installs (train from the top of each photograph, test from
 * the bottom), the trainer runs as the agent runs it (a child process), and
 * its held-out accuracy is compared with a raw-pixel baseline (same head,
 * same split). Prints images per second for embedding, head training time,
 * end-to-end time and the trainer's peak resident memory.
 *
 *   npm run bench:finetune -- [--train-per-class 60] [--test-per-class 30] [--threads 2] [--keep DIR] [--hyperparameters JSON]
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { convertNsfwjsMobilenet } from '../../apps/agent/src/finetune/backbones/nsfwjs-mobilenet.js';
import type { LinearProbeMetricsFile } from '../../apps/agent/src/finetune/linear-probe.js';
import type { LinearProbeSpec } from '../../apps/agent/src/finetune/linear-probe-spec.js';
import { defaultLinearProbeEntry, TrainerProcess } from '../../apps/agent/src/finetune/trainer-process.js';
import { rawPixelBaseline } from '../support/finetune/raw-pixel-baseline.js';
import { textureSourcesAvailable, writeTextureDataset } from '../support/finetune/texture-dataset.js';

export interface FinetuneBenchResult {
  images: { train: number; test: number; classes: number };
  probe: { accuracy: number; macroF1: number; recall: Record<string, number>; confusion: number[][] };
  rawPixelBaseline: { accuracy: number; macroF1: number };
  chance: number;
  embeddingImagesPerSecond: number;
  headSeconds: number;
  trainerSeconds: number;
  endToEndSeconds: number;
  trainerPeakRssMiB: number;
  verification: LinearProbeMetricsFile['verification'];
  backboneDigest: string;
}

export async function runFinetuneBench(opts: { trainPerClass: number; testPerClass: number; threads: number; dir: string; hyperparameters?: Record<string, number> }): Promise<FinetuneBenchResult> {
  if (!textureSourcesAvailable()) throw new Error('python3-skimage is not installed (apt-get install python3-skimage): its texture photographs are the real images');
  const started = performance.now();
  const backbone = convertNsfwjsMobilenet();
  const basePath = path.join(opts.dir, 'mobilenet-v2.onnx');
  await writeFile(basePath, backbone.bytes);
  const dataset = path.join(opts.dir, 'textures');
  await writeTextureDataset(dataset, { trainPerClass: opts.trainPerClass, testPerClass: opts.testPerClass });
  const spec: LinearProbeSpec = {
    job: 'bench-textures',
    datasetPath: dataset,
    datasetFormat: 'imagefolder',
    baseModelPath: basePath,
    input: backbone.input,
    hyperparameters: opts.hyperparameters ?? {},
    holdoutFraction: 0.2,
    outputDir: path.join(opts.dir, 'out'),
    outputModel: 'textures',
    threads: opts.threads,
  };
  const specFile = path.join(opts.dir, 'spec.json');
  await writeFile(specFile, JSON.stringify(spec));
  const trainerStart = performance.now();
  const outcome = await TrainerProcess.run({ command: process.execPath, args: [defaultLinearProbeEntry(), specFile], env: { PATH: process.env.PATH ?? '' }, outputDir: spec.outputDir, onEvent: () => undefined, memoryPollMs: 100 });
  const trainerSeconds = (performance.now() - trainerStart) / 1000;
  if (outcome.end !== 'succeeded') throw new Error(`the trainer ended ${outcome.end}: ${outcome.failure}`);
  const endToEndSeconds = (performance.now() - started) / 1000;
  const m = JSON.parse(await readFile(path.join(spec.outputDir, 'metrics.json'), 'utf8')) as LinearProbeMetricsFile;
  const baseline = await rawPixelBaseline(dataset, { holdoutFraction: spec.holdoutFraction, hyperparameters: spec.hyperparameters });
  return {
    images: { train: opts.trainPerClass * 3, test: opts.testPerClass * 3, classes: m.labels.length },
    probe: { accuracy: m.holdout.accuracy, macroF1: m.holdout.macroF1, recall: m.holdout.recall, confusion: m.holdout.confusion },
    rawPixelBaseline: { accuracy: baseline.accuracy, macroF1: baseline.macroF1 },
    chance: 1 / m.labels.length,
    embeddingImagesPerSecond: m.imagesPerSecond,
    headSeconds: m.seconds.head,
    trainerSeconds,
    endToEndSeconds,
    trainerPeakRssMiB: Math.round(outcome.peakRssBytes / 2 ** 20),
    verification: m.verification,
    backboneDigest: backbone.digest,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'train-per-class': { type: 'string', default: '60' },
      'test-per-class': { type: 'string', default: '30' },
      threads: { type: 'string', default: '2' },
      keep: { type: 'string' },
      hyperparameters: { type: 'string', default: '{}' },
    },
    strict: true,
  });
  const dir = values.keep ?? (await mkdtemp(path.join(os.tmpdir(), 'flotilla-finetune-bench-')));
  try {
    const r = await runFinetuneBench({ trainPerClass: Number(values['train-per-class']), testPerClass: Number(values['test-per-class']), threads: Number(values.threads), dir, hyperparameters: JSON.parse(values.hyperparameters) as Record<string, number> });
    process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    process.stdout.write(
      [
        '',
        `linear probe on MobileNetV2 (nsfwjs, converted): held-out accuracy ${r.probe.accuracy.toFixed(3)}, macro-F1 ${r.probe.macroF1.toFixed(3)}`,
        `raw-pixel baseline (same head and split):          held-out accuracy ${r.rawPixelBaseline.accuracy.toFixed(3)}, macro-F1 ${r.rawPixelBaseline.macroF1.toFixed(3)} (chance ${r.chance.toFixed(3)})`,
        `embedding ${r.embeddingImagesPerSecond.toFixed(1)} images/s; head ${r.headSeconds.toFixed(2)} s; trainer process ${r.trainerSeconds.toFixed(1)} s; end to end ${r.endToEndSeconds.toFixed(1)} s; trainer peak RSS ${r.trainerPeakRssMiB} MiB`,
        '',
      ].join('\n'),
    );
  } finally {
    if (values.keep === undefined) await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1]?.endsWith('finetune.bench.js')) await main();
