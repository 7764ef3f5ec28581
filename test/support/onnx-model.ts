import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { encodeModel as encodeOnnxModel, type OnnxGraph } from '../../apps/agent/src/finetune/onnx-proto.js';

/**
 * Writes small, real ONNX models without Python or a download: the ONNX
 * ModelProto is plain protobuf, encoded with the agent's subset of onnx.proto
 * (apps/agent/src/finetune/onnx-proto.ts, field numbers as in onnx/onnx.proto).
 * The models are deterministic, so the committed fixtures under
 * test/fixtures/models can be checked byte for byte against this generator.
 *
 * Run `node dist/test/support/onnx-model.js [outDir]` to regenerate them.
 */

/** TensorProto.DataType values used here. */
const ELEM = { FLOAT: 1, INT64: 7 } as const;
/** AttributeProto.AttributeType.INT */
const ATTR_INT = 2;
/** IR version 8 (ONNX 1.10+) and opset 13: old enough for any ONNX Runtime in use, new enough for Softmax on the last axis. */
const IR_VERSION = 8;
const OPSET = 13;

/** A 4-feature, 3-class linear classifier: probabilities = softmax(input x weights + bias). */
export interface LinearClassifierSpec {
  /** 4 rows (features) of 3 columns (classes). */
  weights: readonly (readonly number[])[];
  /** One per class. */
  bias: readonly number[];
  /** Written to ModelProto.model_version and doc_string. */
  modelVersion: number;
}

/** Version 1.0.0 of the test model: logits = [x0 + x3 + 0.5, x1 + x3, x2 + x3 - 0.5]. */
export const LINEAR_CLASSIFIER_V1: LinearClassifierSpec = {
  weights: [
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
    [1, 1, 1],
  ],
  bias: [0.5, 0, -0.5],
  modelVersion: 1,
};

/** Version 2.0.0 of the test model: logits = [2 x0 - 0.5, 2 x1, 2 x2 + 0.5]; tells v1 from v2 apart on every input. */
export const LINEAR_CLASSIFIER_V2: LinearClassifierSpec = {
  weights: [
    [2, 0, 0],
    [0, 2, 0],
    [0, 0, 2],
    [0, 0, 0],
  ],
  bias: [-0.5, 0, 0.5],
  modelVersion: 2,
};

function tensorType(elemType: number, dims: (number | string)[]) {
  return {
    tensor_type: {
      elem_type: elemType,
      shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) },
    },
  };
}

function encodeModel(graph: Record<string, unknown>, docString: string, modelVersion: number): Uint8Array {
  return encodeOnnxModel({
    ir_version: IR_VERSION,
    producer_name: 'flotilla-test',
    producer_version: '1',
    model_version: modelVersion,
    doc_string: docString,
    graph: graph as unknown as OnnxGraph,
    opset_import: [{ domain: '', version: OPSET }],
  });
}

/**
 * `input` FP32 [batch, 4] -> MatMul(weights) -> `logits` [batch, 3] ->
 * Add(bias) -> Softmax(axis -1) -> `probabilities` [batch, 3]. Both logits and
 * probabilities are graph outputs so the tests can exercise output filtering.
 */
export function buildLinearClassifier(spec: LinearClassifierSpec): Uint8Array {
  if (spec.weights.length !== 4 || spec.weights.some((row) => row.length !== 3)) {
    throw new Error('weights must be 4 rows of 3 numbers');
  }
  if (spec.bias.length !== 3) throw new Error('bias must have 3 numbers');
  const graph = {
    name: 'linear_classifier',
    node: [
      { op_type: 'MatMul', name: 'matmul', input: ['input', 'W'], output: ['xw'] },
      { op_type: 'Add', name: 'add_bias', input: ['xw', 'b'], output: ['logits'] },
      {
        op_type: 'Softmax',
        name: 'softmax',
        input: ['logits'],
        output: ['probabilities'],
        attribute: [{ name: 'axis', type: ATTR_INT, i: -1 }],
      },
    ],
    initializer: [
      { name: 'W', data_type: ELEM.FLOAT, dims: [4, 3], float_data: spec.weights.flat() },
      { name: 'b', data_type: ELEM.FLOAT, dims: [3], float_data: [...spec.bias] },
    ],
    input: [{ name: 'input', type: tensorType(ELEM.FLOAT, ['batch', 4]) }],
    output: [
      { name: 'logits', type: tensorType(ELEM.FLOAT, ['batch', 3]) },
      { name: 'probabilities', type: tensorType(ELEM.FLOAT, ['batch', 3]) },
    ],
  };
  return encodeModel(graph, `linear classifier v${spec.modelVersion}`, spec.modelVersion);
}

/** `a` INT64 [batch, 2] + `b` INT64 [batch, 2] -> `sum` INT64 [batch, 2]: exercises INT64 and multiple inputs. */
export function buildInt64Adder(): Uint8Array {
  const graph = {
    name: 'int64_adder',
    node: [{ op_type: 'Add', name: 'add', input: ['a', 'b'], output: ['sum'] }],
    input: [
      { name: 'a', type: tensorType(ELEM.INT64, ['batch', 2]) },
      { name: 'b', type: tensorType(ELEM.INT64, ['batch', 2]) },
    ],
    output: [{ name: 'sum', type: tensorType(ELEM.INT64, ['batch', 2]) }],
  };
  return encodeModel(graph, 'int64 adder', 1);
}

/**
 * A classifier that fails a share of real requests: logits as v1, plus
 * Gather(zeros[8], Cast<int64>(input[:, 0])). ONNX Runtime refuses an index
 * outside [-8, 7], so every request whose first feature is 8 or more (or below
 * -8) is answered with an error, by the real server, while the rest succeed.
 * A load generator sending first features uniform in [0, 10) sees 20% errors.
 */
export function buildFlakyClassifier(): Uint8Array {
  const graph = {
    name: 'flaky_classifier',
    node: [
      { op_type: 'MatMul', name: 'matmul', input: ['input', 'W'], output: ['xw'] },
      { op_type: 'Add', name: 'add_bias', input: ['xw', 'b'], output: ['xb'] },
      { op_type: 'Slice', name: 'first_feature', input: ['input', 'starts', 'ends', 'axes'], output: ['x0'] },
      { op_type: 'Cast', name: 'to_index', input: ['x0'], output: ['index'], attribute: [{ name: 'to', type: ATTR_INT, i: ELEM.INT64 }] },
      { op_type: 'Gather', name: 'bounded_lookup', input: ['table', 'index'], output: ['offset'], attribute: [{ name: 'axis', type: ATTR_INT, i: 0 }] },
      { op_type: 'Add', name: 'add_offset', input: ['xb', 'offset'], output: ['logits'] },
      { op_type: 'Softmax', name: 'softmax', input: ['logits'], output: ['probabilities'], attribute: [{ name: 'axis', type: ATTR_INT, i: -1 }] },
    ],
    initializer: [
      { name: 'W', data_type: ELEM.FLOAT, dims: [4, 3], float_data: LINEAR_CLASSIFIER_V1.weights.flat() },
      { name: 'b', data_type: ELEM.FLOAT, dims: [3], float_data: [...LINEAR_CLASSIFIER_V1.bias] },
      { name: 'starts', data_type: ELEM.INT64, dims: [1], int64_data: [0] },
      { name: 'ends', data_type: ELEM.INT64, dims: [1], int64_data: [1] },
      { name: 'axes', data_type: ELEM.INT64, dims: [1], int64_data: [1] },
      { name: 'table', data_type: ELEM.FLOAT, dims: [8], float_data: [0, 0, 0, 0, 0, 0, 0, 0] },
    ],
    input: [{ name: 'input', type: tensorType(ELEM.FLOAT, ['batch', 4]) }],
    output: [
      { name: 'logits', type: tensorType(ELEM.FLOAT, ['batch', 3]) },
      { name: 'probabilities', type: tensorType(ELEM.FLOAT, ['batch', 3]) },
    ],
  };
  return encodeModel(graph, 'flaky classifier: errors when input[:, 0] >= 8', 3);
}

/**
 * A well-formed ONNX file that no runtime can load: its one node is an
 * operator that does not exist. The real server starts, fails to load it and
 * exits, so the deployment never becomes Ready.
 */
export function buildNeverReadyModel(): Uint8Array {
  const graph = {
    name: 'never_ready',
    node: [{ op_type: 'FlotillaNoSuchOperator', name: 'missing_op', input: ['input'], output: ['probabilities'] }],
    input: [{ name: 'input', type: tensorType(ELEM.FLOAT, ['batch', 4]) }],
    output: [{ name: 'probabilities', type: tensorType(ELEM.FLOAT, ['batch', 3]) }],
  };
  return encodeModel(graph, 'never ready: an operator no runtime implements', 4);
}

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** The committed fixtures: file name -> bytes. */
export function fixtureModels(): Record<string, Uint8Array> {
  return {
    'linear-classifier-1.0.0.onnx': buildLinearClassifier(LINEAR_CLASSIFIER_V1),
    'linear-classifier-2.0.0.onnx': buildLinearClassifier(LINEAR_CLASSIFIER_V2),
    'int64-adder.onnx': buildInt64Adder(),
    'flaky-classifier.onnx': buildFlakyClassifier(),
    'never-ready.onnx': buildNeverReadyModel(),
  };
}

/** `sha256sum`-compatible listing of the fixtures. */
export function fixtureChecksums(models: Record<string, Uint8Array>): string {
  return Object.entries(models)
    .map(([file, bytes]) => `${sha256Digest(bytes).slice('sha256:'.length)}  ${file}\n`)
    .join('');
}

/** Absolute path of the committed fixture directory, from the repository root. */
export function fixtureModelsDir(repoRoot: string = process.cwd()): string {
  return path.join(repoRoot, 'test', 'fixtures', 'models');
}

export async function writeFixtureModels(outDir: string): Promise<void> {
  await mkdir(outDir, { recursive: true });
  const models = fixtureModels();
  for (const [file, bytes] of Object.entries(models)) {
    await writeFile(path.join(outDir, file), bytes);
  }
  await writeFile(path.join(outDir, 'SHA256SUMS'), fixtureChecksums(models));
}

const invokedPath = process.argv[1];
if (invokedPath !== undefined && import.meta.url === pathToFileURL(invokedPath).href) {
  const outDir = path.resolve(process.argv[2] ?? fixtureModelsDir());
  await writeFixtureModels(outDir);
  process.stdout.write(`wrote ONNX fixtures to ${outDir}\n`);
}
