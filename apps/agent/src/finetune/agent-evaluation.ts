import { readFile } from 'node:fs/promises';
import ort from 'onnxruntime-node';
import { z } from 'zod';
import { argmaxRows, classificationMetrics, type ClassificationMetrics } from './classification-metrics.js';
import { countsByClass, readDataset, splitDataset, type DatasetImage } from './dataset.js';
import { ImageGraphRunner } from './image-embedder.js';
import { LABELS_METADATA_KEY } from './linear-probe.js';
import { decodeModel } from './onnx-proto.js';
import { modelShape, type ModelShape } from './trainer-output.js';

/**
 * The agent's own evaluation of a model a command or image trainer produced:
 * the held-out split computed as the agent computes it (test/ or test.csv,
 * else the stable per-item fraction), the model run through ONNX Runtime,
 * accuracy, macro-F1, per-class recall, the confusion matrix and the
 * cross-entropy. Runs in a child process like the trainers (ONNX Runtime
 * and sharp are never loaded by the agent itself).
 */
export const EvaluationSpecSchema = z
  .object({
    datasetPath: z.string().min(1),
    datasetFormat: z.enum(['imagefolder', 'csv', 'jsonl']),
    datasetColumns: z.object({ labelColumn: z.string().optional(), imageColumn: z.string().optional(), featureColumns: z.array(z.string()).optional() }).strict().optional(),
    holdoutFraction: z.number().gt(0).lt(1),
    modelPath: z.string().min(1),
    /** The model's class order (its labels.txt). */
    labels: z.array(z.string()).min(2),
    servedModelPath: z.string().min(1).optional(),
    threads: z.number().int().min(1).max(256).default(2),
  })
  .strict();
export type EvaluationSpec = z.infer<typeof EvaluationSpecSchema>;

export interface AgentEvaluation {
  metrics: { accuracy: number; f1: number; loss: number };
  holdout: ClassificationMetrics;
  holdoutSource: 'test-directory' | 'holdout-fraction';
  counts: { train: Record<string, number>; holdout: Record<string, number> };
  served: { metrics: ClassificationMetrics } | { skipped: string } | null;
}

async function scores(modelBytes: Uint8Array, shape: ModelShape, items: DatasetImage[], threads: number): Promise<{ data: Float32Array; width: number }> {
  if (shape.kind === 'image') {
    const runner = await ImageGraphRunner.load(modelBytes, shape, threads);
    try {
      return await runner.runImages(items, 16);
    } finally {
      await runner.release();
    }
  }
  const session = await ort.InferenceSession.create(modelBytes, { executionProviders: ['cpu'], intraOpNumThreads: threads });
  try {
    const x = new Float32Array(items.length * shape.features);
    items.forEach((it, i) => x.set(it.features!, i * shape.features));
    const result = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', x, [items.length, shape.features]) });
    const data = Float32Array.from(result[session.outputNames[0]!]!.data as Float32Array);
    return { data, width: items.length === 0 ? 0 : data.length / items.length };
  } finally {
    await session.release();
  }
}

/** Rows that already are probabilities are used as they are; others (logits) go through a softmax. */
function probabilities(row: Float32Array): Float32Array {
  const sum = row.reduce((a, b) => a + b, 0);
  if (row.every((v) => v >= 0 && v <= 1) && Math.abs(sum - 1) < 1e-3) return row;
  const max = Math.max(...row);
  const e = row.map((v) => Math.exp(v - max));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / total);
}

export async function evaluateProducedModel(spec: EvaluationSpec): Promise<AgentEvaluation> {
  const ds = await readDataset(spec.datasetPath, { format: spec.datasetFormat, ...(spec.datasetColumns ?? {}) });
  if ([...spec.labels].sort().join('\n') !== [...ds.labels].sort().join('\n')) {
    throw new Error(`labels.txt lists ${spec.labels.length} classes that are not the dataset's ${ds.labels.length} classes`);
  }
  // The model's output i is class spec.labels[i]; the dataset's class order may differ.
  const toDataset = Int32Array.from(spec.labels.map((l) => ds.labels.indexOf(l)));
  const splits = splitDataset(ds, spec.holdoutFraction, 0);
  const bytes = await readFile(spec.modelPath);
  const shape = modelShape(decodeModel(bytes, 'model.onnx'), ds.featureColumns?.length ?? null);
  const out = await scores(bytes, shape, splits.holdout, spec.threads);
  const classes = spec.labels.length;
  if (splits.holdout.length > 0 && out.width !== classes) throw new Error(`model.onnx gives ${out.width} outputs per example, labels.txt lists ${classes} classes`);
  const predictedModel = argmaxRows(out.data, splits.holdout.length, classes);
  const predicted = Int32Array.from(predictedModel, (i) => toDataset[i]!);
  const actual = Int32Array.from(splits.holdout.map((h) => h.label));
  const holdout = classificationMetrics(actual, predicted, ds.labels);
  let loss = 0;
  splits.holdout.forEach((h, i) => {
    const p = probabilities(out.data.subarray(i * classes, (i + 1) * classes));
    loss -= Math.log(Math.max(p[spec.labels.indexOf(ds.labels[h.label]!)]!, 1e-12));
  });
  loss /= Math.max(1, splits.holdout.length);
  return {
    metrics: { accuracy: holdout.accuracy, f1: holdout.macroF1, loss },
    holdout,
    holdoutSource: splits.holdoutSource,
    counts: { train: countsByClass([...splits.train, ...splits.validation], ds.labels), holdout: countsByClass(splits.holdout, ds.labels) },
    served: await evaluateServed(spec, ds.labels, splits.holdout, actual, ds.featureColumns?.length ?? null),
  };
}

async function evaluateServed(spec: EvaluationSpec, labels: string[], holdout: DatasetImage[], actual: Int32Array, featureCount: number | null): Promise<AgentEvaluation['served']> {
  if (spec.servedModelPath === undefined) return null;
  try {
    const bytes = await readFile(spec.servedModelPath);
    const model = decodeModel(bytes, 'the served model');
    const raw = model.metadata_props?.find((p) => p.key === LABELS_METADATA_KEY)?.value;
    const servedLabels = raw === undefined ? null : (JSON.parse(raw) as unknown);
    if (!Array.isArray(servedLabels) || servedLabels.join('\n') !== labels.join('\n')) return { skipped: "the served version's classes are not recorded or differ from the dataset's" };
    const out = await scores(bytes, modelShape(model, featureCount), holdout, spec.threads);
    return { metrics: classificationMetrics(actual, argmaxRows(out.data, holdout.length, labels.length), labels) };
  } catch (err) {
    return { skipped: `the served version could not be run on the held-out items: ${(err as Error).message}` };
  }
}
