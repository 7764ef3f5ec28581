import type { ModelInput } from '@flotilla/contracts';
import {
  ATTR,
  ELEM,
  OnnxModelError,
  floatTensor,
  tensorType,
  type OnnxGraph,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
  type OnnxValueInfo,
} from './onnx-proto.js';

/** Name of the exported graph's input: FP32 [batch, height, width, 3] RGB pixels as decoded (0..255). */
export const IMAGE_INPUT = 'image';
/** Name of the exported graph's output: FP32 [batch, classes]. */
export const PROBABILITIES_OUTPUT = 'probabilities';
/** Name of the embedding output of the feature-extractor graph. */
export const EMBEDDING_OUTPUT = 'flotilla_embedding';

export interface EmbeddingChoice {
  tensor: string;
  /** How it was chosen, for the job's report. */
  reason: string;
}

/** A softmax head in the exported graph: logits = embedding x weights + bias; weights row-major [dim, classes]. */
export interface HeadWeights {
  dim: number;
  classes: number;
  weights: Float32Array;
  bias: Float32Array;
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function initializerNames(g: OnnxGraph): Set<string> {
  return new Set(g.initializer.map((t) => t.name));
}

/** The backbone's one real input (graph inputs that are not initializers). */
export function backboneInput(model: OnnxModel): OnnxValueInfo {
  const inits = initializerNames(model.graph);
  const inputs = model.graph.input.filter((i) => !inits.has(i.name));
  if (inputs.length !== 1) {
    throw new OnnxModelError(`the base model must have exactly one input, it has ${inputs.length} (${inputs.map((i) => i.name).join(', ')})`);
  }
  return inputs[0]!;
}

/**
 * Which tensor is the embedding: the declared one, else the input of the
 * final Gemm/MatMul(+Add) feeding a Softmax or the graph output (the
 * penultimate layer of a classifier), else the single graph output itself.
 */
export function chooseEmbedding(model: OnnxModel, declared?: string): EmbeddingChoice {
  const g = model.graph;
  const producers = new Map<string, OnnxNode>();
  for (const n of g.node) for (const o of n.output) producers.set(o, n);
  const known = new Set([...producers.keys(), ...g.input.map((i) => i.name)]);
  if (declared !== undefined) {
    if (!known.has(declared)) throw new OnnxModelError(`the base model has no tensor "${declared}" (input.embeddingOutput)`);
    return { tensor: declared, reason: `declared on the model version (input.embeddingOutput)` };
  }
  if (g.output.length !== 1) {
    throw new OnnxModelError(`the base model has ${g.output.length} outputs; declare which is the embedding with input.embeddingOutput`);
  }
  const out = g.output[0]!.name;
  let node = producers.get(out);
  const passThrough = new Set(['Softmax', 'Identity', 'Reshape', 'Flatten', 'Squeeze']);
  const walked: string[] = [];
  while (node && passThrough.has(node.op_type)) {
    walked.push(node.op_type);
    node = producers.get(node.input[0]!);
  }
  if (node?.op_type === 'Add') {
    const first = producers.get(node.input[0]!);
    if (first && (first.op_type === 'MatMul' || first.op_type === 'Gemm')) {
      walked.push('Add');
      node = first;
    }
  }
  if (node && (node.op_type === 'MatMul' || node.op_type === 'Gemm')) {
    return { tensor: node.input[0]!, reason: `the input of the final ${node.op_type} (penultimate layer before output "${out}")` };
  }
  return { tensor: out, reason: `the base model's only output "${out}"` };
}

function pruneToOutputs(g: OnnxGraph): void {
  const producers = new Map<string, OnnxNode>();
  for (const n of g.node) for (const o of n.output) producers.set(o, n);
  const needed = new Set<string>();
  const keep = new Set<OnnxNode>();
  const stack = g.output.map((o) => o.name);
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (needed.has(name)) continue;
    needed.add(name);
    const n = producers.get(name);
    if (n && !keep.has(n)) {
      keep.add(n);
      stack.push(...n.input.filter((i) => i !== ''));
    }
  }
  g.node = g.node.filter((n) => keep.has(n));
  g.initializer = g.initializer.filter((t) => needed.has(t.name));
  g.input = g.input.filter((i) => needed.has(i.name));
  g.value_info = (g.value_info ?? []).filter((v) => needed.has(v.name));
}

function unusedName(taken: Set<string>, wanted: string): string {
  let name = wanted;
  for (let i = 1; taken.has(name); i += 1) name = `${wanted}_${i}`;
  taken.add(name);
  return name;
}

/**
 * The backbone with preprocessing in front (image pixels in) and, with a
 * head, a softmax classifier behind the embedding; without a head its output
 * is the flattened embedding. Nodes that no output needs are dropped, so the
 * backbone's own classifier does not run.
 */
export function buildGraph(base: OnnxModel, input: ModelInput, embedding: string, head?: HeadWeights, metadata: Record<string, string> = {}): OnnxModel {
  const model = clone(base);
  const g = model.graph;
  const bb = backboneInput(model);
  const taken = new Set<string>([...g.node.flatMap((n) => [...n.input, ...n.output]), ...g.input.map((i) => i.name), ...g.initializer.map((t) => t.name)]);
  const imageName = taken.has(IMAGE_INPUT) ? unusedName(taken, `flotilla_${IMAGE_INPUT}`) : unusedName(taken, IMAGE_INPUT);
  const n = (wanted: string) => unusedName(taken, `flotilla_${wanted}`);

  const pre: OnnxNode[] = [];
  const inits: OnnxTensor[] = [];
  const scaleName = n('scale');
  const meanName = n('mean');
  const stdName = n('std');
  inits.push(floatTensor(scaleName, [1], [input.scale]), floatTensor(meanName, [3], input.mean), floatTensor(stdName, [3], input.std));
  const scaled = n('scaled');
  const centred = n('centred');
  const normalised = input.layout === 'NCHW' ? n('normalised') : bb.name;
  pre.push(
    { op_type: 'Mul', name: n('scale_pixels'), input: [imageName, scaleName], output: [scaled] },
    { op_type: 'Sub', name: n('subtract_mean'), input: [scaled, meanName], output: [centred] },
    { op_type: 'Div', name: n('divide_std'), input: [centred, stdName], output: [normalised] },
  );
  if (input.layout === 'NCHW') {
    pre.push({ op_type: 'Transpose', name: n('to_nchw'), input: [normalised], output: [bb.name], attribute: [{ name: 'perm', type: ATTR.INTS, ints: [0, 3, 1, 2] }] });
  }
  g.input = [{ name: imageName, type: tensorType(ELEM.FLOAT, ['batch', input.height, input.width, 3]) }, ...g.input.filter((i) => i.name !== bb.name)];

  const post: OnnxNode[] = [];
  const flat = head ? n('embedding') : unusedName(taken, EMBEDDING_OUTPUT);
  post.push({ op_type: 'Flatten', name: n('flatten_embedding'), input: [embedding], output: [flat], attribute: [{ name: 'axis', type: ATTR.INT, i: 1 }] });
  if (head) {
    const w = n('head_weights');
    const b = n('head_bias');
    const xw = n('head_xw');
    const logits = n('logits');
    const probs = taken.has(PROBABILITIES_OUTPUT) ? n(PROBABILITIES_OUTPUT) : unusedName(taken, PROBABILITIES_OUTPUT);
    inits.push(floatTensor(w, [head.dim, head.classes], head.weights), floatTensor(b, [head.classes], head.bias));
    post.push(
      { op_type: 'MatMul', name: n('head_matmul'), input: [flat, w], output: [xw] },
      { op_type: 'Add', name: n('head_add_bias'), input: [xw, b], output: [logits] },
      { op_type: 'Softmax', name: n('head_softmax'), input: [logits], output: [probs], attribute: [{ name: 'axis', type: ATTR.INT, i: 1 }] },
    );
    g.output = [{ name: probs, type: tensorType(ELEM.FLOAT, ['batch', head.classes]) }];
  } else {
    g.output = [{ name: flat, type: tensorType(ELEM.FLOAT, ['batch', 'embedding']) }];
  }
  g.node = [...pre, ...g.node, ...post];
  g.initializer = [...g.initializer, ...inits];
  pruneToOutputs(g);
  g.input = g.input.filter((i) => i.name === imageName);
  g.name = head ? 'flotilla_linear_probe' : 'flotilla_feature_extractor';
  const props = new Map((model.metadata_props ?? []).map((p) => [p.key, p.value]));
  for (const [k, v] of Object.entries(metadata)) props.set(k, v);
  model.metadata_props = [...props].map(([key, value]) => ({ key, value }));
  model.producer_name = 'flotilla-linear-probe';
  model.producer_version = '1';
  return model;
}
