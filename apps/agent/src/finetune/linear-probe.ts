import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildGraph, chooseEmbedding, PROBABILITIES_OUTPUT, IMAGE_INPUT, type EmbeddingChoice } from './classifier-graph.js';
import { argmaxRows, classificationMetrics, type ClassificationMetrics } from './classification-metrics.js';
import { countsByClass, DatasetError, readDataset, resolveDatasetPath, splitDataset, type DatasetImage, type DatasetPathPolicy } from './dataset.js';
import { ImageGraphRunner } from './image-embedder.js';
import { linearProbeHyperparameters, type LinearProbeSpec } from './linear-probe-spec.js';
import { decodeModel, encodeModel, type OnnxModel } from './onnx-proto.js';
import { predictProbabilities, trainSoftmaxHead, type LabelledFeatures, type TrainedHead } from './softmax-head.js';
import { OUTPUT_FILES, type TrainerEvent } from './trainer-contract.js';
import { writeTritonModelDir } from './triton-config.js';

/** Metadata key under which the exported model carries its class labels (JSON array, in output order). */
export const LABELS_METADATA_KEY = 'flotilla.labels';

export interface LinearProbeResult {
  metricsFile: LinearProbeMetricsFile;
  modelPath: string;
}

export interface VerificationResult {
  images: number;
  maxAbsDifference: number;
  argmaxAgreement: number;
}

export interface LinearProbeMetricsFile {
  trainer: 'linear-probe';
  metrics: { accuracy: number; f1: number; loss: number };
  labels: string[];
  datasetFingerprint: string;
  counts: { train: Record<string, number>; validation: Record<string, number>; holdout: Record<string, number> };
  holdoutSource: 'test-directory' | 'holdout-fraction';
  embedding: EmbeddingChoice & { dimension: number };
  head: Omit<TrainedHead, 'weights' | 'bias' | 'dim' | 'classes'>;
  holdout: ClassificationMetrics;
  served: { metrics: ClassificationMetrics } | { skipped: string } | null;
  verification: VerificationResult;
  hyperparameters: Record<string, number>;
  seconds: { embedding: number; head: number; total: number };
  imagesPerSecond: number;
}

function features(x: Float32Array, images: DatasetImage[], dim: number): LabelledFeatures {
  return { x, y: Int32Array.from(images.map((i) => i.label)), n: images.length, dim };
}

function meanCrossEntropy(probabilities: Float32Array, y: Int32Array, classes: number): number {
  if (y.length === 0) return 0;
  let sum = 0;
  for (let i = 0; i < y.length; i += 1) sum -= Math.log(Math.max(probabilities[i * classes + y[i]!]!, 1e-12));
  return sum / y.length;
}

function labelsOf(model: OnnxModel): string[] | null {
  const raw = model.metadata_props?.find((p) => p.key === LABELS_METADATA_KEY)?.value;
  if (raw === undefined) return null;
  try {
    const v: unknown = JSON.parse(raw);
    return Array.isArray(v) && v.every((s) => typeof s === 'string') ? (v as string[]) : null;
  } catch {
    return null;
  }
}

/**
 * The builtin linear-probe trainer: frozen ONNX backbone, softmax head on its
 * embeddings, one exported ONNX graph (image -> probabilities) re-run through
 * ONNX Runtime and required to agree with the trainer's own predictions.
 */
export async function runLinearProbe(spec: LinearProbeSpec, emit: (e: TrainerEvent) => void, datasetPolicy?: DatasetPathPolicy): Promise<LinearProbeResult> {
  const started = performance.now();
  const hp = linearProbeHyperparameters(spec.hyperparameters);
  emit({ event: 'progress', phase: 'Preparing', progress: 0, message: 'reading the dataset' });
  if (spec.datasetColumns?.featureColumns !== undefined) {
    throw new DatasetError('the linear-probe trainer embeds images with its base model; a dataset of feature columns needs a command or image trainer (or an imageColumn instead of featureColumns)');
  }
  const root = await resolveDatasetPath(spec.datasetPath, datasetPolicy);
  const ds = await readDataset(root, { format: spec.datasetFormat, ...(spec.datasetColumns ?? {}) });
  const splits = splitDataset(ds, spec.holdoutFraction, hp.validationFraction);
  const counts = { train: countsByClass(splits.train, ds.labels), validation: countsByClass(splits.validation, ds.labels), holdout: countsByClass(splits.holdout, ds.labels) };
  emit({ event: 'metric', name: 'dataset.images', value: ds.train.length + (ds.test?.length ?? 0) });
  emit({ event: 'metric', name: 'dataset.classes', value: ds.labels.length });

  const base = decodeModel(await readFile(spec.baseModelPath), 'the base model');
  const embedding = chooseEmbedding(base, spec.input.embeddingOutput);
  const featureGraph = encodeModel(buildGraph(base, spec.input, embedding.tensor));
  const extractor = await ImageGraphRunner.load(featureGraph, spec.input, spec.threads);
  const all = [...splits.train, ...splits.validation, ...splits.holdout];
  emit({ event: 'progress', phase: 'Training', progress: 0.05, message: `embedding ${all.length} images with ${embedding.tensor}` });
  const embedStart = performance.now();
  const emb = await extractor.runImages(all, hp.embedBatchSize, (done) =>
    emit({ event: 'progress', phase: 'Training', progress: 0.05 + 0.7 * (done / all.length), message: `embedded ${done}/${all.length} images` }),
  );
  await extractor.release();
  const embedSeconds = (performance.now() - embedStart) / 1000;
  const dim = emb.width;
  const slice = (from: number, count: number) => emb.data.subarray(from * dim, (from + count) * dim);
  const trainSet = features(slice(0, splits.train.length), splits.train, dim);
  const validationSet = features(slice(splits.train.length, splits.validation.length), splits.validation, dim);
  const holdoutSet = features(slice(splits.train.length + splits.validation.length, splits.holdout.length), splits.holdout, dim);

  const headStart = performance.now();
  let lastReport = 0;
  const head = trainSoftmaxHead(trainSet, validationSet, ds.labels.length, hp, (r) => {
    const now = performance.now();
    if (now - lastReport < 250 && r.epoch !== r.epochs) return;
    lastReport = now;
    emit({ event: 'progress', phase: 'Training', progress: 0.75 + 0.15 * (r.epoch / r.epochs), message: `head epoch ${r.epoch}/${r.epochs}` });
    emit({ event: 'metric', name: 'validation.loss', value: r.validationLoss, step: r.epoch });
  });
  const headSeconds = (performance.now() - headStart) / 1000;

  emit({ event: 'progress', phase: 'Evaluating', progress: 0.9, message: `evaluating on ${splits.holdout.length} held-out images` });
  const probs = predictProbabilities(head, holdoutSet.x, holdoutSet.n);
  const holdout = classificationMetrics(holdoutSet.y, argmaxRows(probs, holdoutSet.n, head.classes), ds.labels);
  const loss = meanCrossEntropy(probs, holdoutSet.y, head.classes);

  const classifier = buildGraph(base, spec.input, embedding.tensor, head, { [LABELS_METADATA_KEY]: JSON.stringify(ds.labels), 'flotilla.job': spec.job, 'flotilla.dataset-fingerprint': ds.fingerprint });
  const bytes = encodeModel(classifier);
  const verification = await verifyExport(bytes, spec, splits.holdout.length > 0 ? splits.holdout : splits.validation, splits.holdout.length > 0 ? probs : predictProbabilities(head, validationSet.x, validationSet.n), head.classes);
  const served = await evaluateServed(spec, ds.labels, splits.holdout, holdoutSet.y, hp.embedBatchSize);

  await mkdir(spec.outputDir, { recursive: true });
  const modelPath = path.join(spec.outputDir, OUTPUT_FILES.model);
  await writeFile(modelPath, bytes);
  await writeFile(path.join(spec.outputDir, OUTPUT_FILES.labels), `${ds.labels.join('\n')}\n`);
  await writeTritonModelDir(path.join(spec.outputDir, 'triton'), spec.outputModel, bytes, ds.labels, { input: IMAGE_INPUT, output: PROBABILITIES_OUTPUT, height: spec.input.height, width: spec.input.width });
  const totalSeconds = (performance.now() - started) / 1000;
  const metricsFile: LinearProbeMetricsFile = {
    trainer: 'linear-probe',
    metrics: { accuracy: holdout.accuracy, f1: holdout.macroF1, loss },
    labels: ds.labels,
    datasetFingerprint: ds.fingerprint,
    counts,
    holdoutSource: splits.holdoutSource,
    embedding: { ...embedding, dimension: dim },
    head: { bestEpoch: head.bestEpoch, epochsRun: head.epochsRun, trainLoss: head.trainLoss, validationLoss: head.validationLoss },
    holdout,
    served,
    verification,
    hyperparameters: { ...hp },
    seconds: { embedding: embedSeconds, head: headSeconds, total: totalSeconds },
    imagesPerSecond: all.length / Math.max(embedSeconds, 1e-9),
  };
  await writeFile(path.join(spec.outputDir, OUTPUT_FILES.metrics), `${JSON.stringify(metricsFile, null, 2)}\n`);
  emit({ event: 'metric', name: 'accuracy', value: holdout.accuracy });
  emit({ event: 'metric', name: 'f1', value: holdout.macroF1 });
  emit({ event: 'metric', name: 'loss', value: loss });
  emit({ event: 'progress', phase: 'Evaluating', progress: 1, message: 'model.onnx, labels.txt and metrics.json written' });
  return { metricsFile, modelPath };
}

/** Probabilities may differ by float rounding (ONNX Runtime fuses ops); the decision must not. */
export const VERIFY_TOLERANCE = 1e-3;

async function verifyExport(bytes: Uint8Array, spec: LinearProbeSpec, images: DatasetImage[], expected: Float32Array, classes: number): Promise<VerificationResult> {
  const runner = await ImageGraphRunner.load(bytes, spec.input, spec.threads);
  const got = await runner.runImages(images, 16);
  await runner.release();
  if (got.width !== classes && images.length > 0) throw new Error(`exported model gives ${got.width} outputs per image, expected ${classes}`);
  let maxAbs = 0;
  for (let i = 0; i < expected.length; i += 1) maxAbs = Math.max(maxAbs, Math.abs(expected[i]! - got.data[i]!));
  const a = argmaxRows(expected, images.length, classes);
  const b = argmaxRows(got.data, images.length, classes);
  const agree = a.filter((v, i) => v === b[i]).length;
  const result = { images: images.length, maxAbsDifference: maxAbs, argmaxAgreement: images.length === 0 ? 1 : agree / images.length };
  if (maxAbs > VERIFY_TOLERANCE) {
    throw new Error(`the exported model disagrees with the trainer: probabilities differ by up to ${maxAbs.toExponential(2)} (tolerance ${VERIFY_TOLERANCE}) on ${images.length} images`);
  }
  return result;
}

async function evaluateServed(spec: LinearProbeSpec, labels: string[], holdout: DatasetImage[], y: Int32Array, batch: number): Promise<LinearProbeMetricsFile['served']> {
  if (spec.servedModelPath === undefined) return null;
  let served: OnnxModel;
  try {
    served = decodeModel(await readFile(spec.servedModelPath), 'the served model');
  } catch (err) {
    return { skipped: (err as Error).message };
  }
  const servedLabels = labelsOf(served);
  if (servedLabels === null || servedLabels.join('\n') !== labels.join('\n')) {
    return { skipped: `the served version's classes (${servedLabels?.join(', ') ?? 'not recorded'}) differ from the dataset's` };
  }
  try {
    const runner = await ImageGraphRunner.load(await readFile(spec.servedModelPath), spec.input, spec.threads);
    const out = await runner.runImages(holdout, batch);
    await runner.release();
    return { metrics: classificationMetrics(y, argmaxRows(out.data, holdout.length, labels.length), labels) };
  } catch (err) {
    return { skipped: `the served version could not be run on the held-out images: ${(err as Error).message}` };
  }
}
