import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { decodeModel, staticDims, type OnnxModel } from './onnx-proto.js';
import { OUTPUT_FILES } from './trainer-contract.js';

/** Largest model.onnx the agent accepts from a command or image trainer. */
export const MAX_MODEL_BYTES = 2 * 2 ** 30;

export class TrainerOutputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainerOutputError';
  }
}

/** metrics.json of a command or image trainer: its own claims, shown but never used by the gate. */
export const CommandMetricsFileSchema = z
  .object({ metrics: z.record(z.string().max(64), z.number()) })
  .passthrough();

/** What the produced model looks like to the agent's evaluation. */
export type ModelShape = { kind: 'image'; height: number; width: number; classes: number } | { kind: 'features'; features: number; classes: number };

export interface ValidatedOutput {
  modelPath: string;
  labels: string[];
  shape: ModelShape;
  trainerMetrics: Record<string, number>;
}

function realInputs(model: OnnxModel) {
  const initializers = new Set(model.graph.initializer.map((t) => t.name));
  return model.graph.input.filter((i) => !initializers.has(i.name));
}

/** The model's input and output read as the contract asks: image [N,H,W,3] or features [N,F] in, [N,classes] out. */
export function modelShape(model: OnnxModel, featureCount: number | null): ModelShape {
  const inputs = realInputs(model);
  if (inputs.length !== 1 || model.graph.output.length !== 1) throw new TrainerOutputError(`model.onnx must have one input and one output; it has ${inputs.length} and ${model.graph.output.length}`);
  const out = staticDims(model.graph.output[0]!);
  const classes = out.length === 2 ? out[1] : null;
  const inDims = staticDims(inputs[0]!);
  if (featureCount !== null) {
    if (inDims.length !== 2 || (inDims[1] !== null && inDims[1] !== featureCount)) throw new TrainerOutputError(`model.onnx input must be [batch, ${featureCount}] features; it is [${inDims.map((d) => d ?? '?').join(', ')}]`);
    return { kind: 'features', features: featureCount, classes: classes ?? -1 };
  }
  if (inDims.length !== 4 || inDims[3] !== 3 || !inDims[1] || !inDims[2]) throw new TrainerOutputError(`model.onnx input must be [batch, height, width, 3] RGB pixels with a static height and width; it is [${inDims.map((d) => d ?? '?').join(', ')}]`);
  return { kind: 'image', height: inDims[1], width: inDims[2], classes: classes ?? -1 };
}

/**
 * Checks what a command or image trainer left in its output directory before
 * anything else reads it: model.onnx parses as ONNX with the contract's
 * input and output, labels.txt lists at least two distinct classes, as many
 * as the model's outputs, metrics.json has the contract's shape.
 */
export async function validateTrainerOutput(outputDir: string, featureCount: number | null): Promise<ValidatedOutput> {
  const modelPath = path.join(outputDir, OUTPUT_FILES.model);
  const s = await stat(modelPath).catch(() => null);
  if (!s?.isFile()) throw new TrainerOutputError('the trainer wrote no model.onnx');
  if (s.size > MAX_MODEL_BYTES) throw new TrainerOutputError(`model.onnx is ${s.size} bytes, above the ${MAX_MODEL_BYTES}-byte limit`);
  let model: OnnxModel;
  try {
    model = decodeModel(await readFile(modelPath), 'model.onnx');
  } catch (err) {
    throw new TrainerOutputError((err as Error).message);
  }
  const shape = modelShape(model, featureCount);
  const labelsText = await readFile(path.join(outputDir, OUTPUT_FILES.labels), 'utf8').catch(() => null);
  if (labelsText === null) throw new TrainerOutputError('the trainer wrote no labels.txt');
  const labels = labelsText.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  if (labels.length < 2) throw new TrainerOutputError(`labels.txt lists ${labels.length} class${labels.length === 1 ? '' : 'es'}; a classifier needs at least two`);
  if (new Set(labels).size !== labels.length) throw new TrainerOutputError('labels.txt lists a class twice');
  if (shape.classes !== -1 && shape.classes !== labels.length) throw new TrainerOutputError(`labels.txt lists ${labels.length} classes but model.onnx gives ${shape.classes} outputs per example`);
  const metricsText = await readFile(path.join(outputDir, OUTPUT_FILES.metrics), 'utf8').catch(() => null);
  if (metricsText === null) throw new TrainerOutputError('the trainer wrote no metrics.json');
  let parsed: unknown;
  try {
    parsed = JSON.parse(metricsText);
  } catch {
    throw new TrainerOutputError('metrics.json is not JSON');
  }
  const metrics = CommandMetricsFileSchema.safeParse(parsed);
  if (!metrics.success) throw new TrainerOutputError(`metrics.json must be {"metrics": {name: number, ...}}: ${metrics.error.issues[0]?.path.join('.') ?? ''} ${metrics.error.issues[0]?.message ?? ''}`.trim());
  const trainerMetrics = Object.fromEntries(Object.entries(metrics.data.metrics).filter(([, v]) => Number.isFinite(v)).slice(0, 32));
  return { modelPath, labels, shape, trainerMetrics };
}
