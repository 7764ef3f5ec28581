import { ATTR, ELEM, encodeModel, floatTensor, int64Tensor, tensorType, type OnnxAttribute, type OnnxNode, type OnnxTensor } from '../onnx-proto.js';

/**
 * Converts a Keras functional model as TensorFlow.js stores it (model.json's
 * `modelTopology` plus its weights manifest and binary) into one ONNX graph,
 * without Python. Only the layers an image CNN like MobileNetV2 uses are
 * converted; any other layer is an error naming it. The ONNX graph keeps the
 * Keras input (NHWC) and computes in NCHW inside.
 */

export interface KerasLayer {
  class_name: string;
  name: string;
  config: Record<string, unknown>;
  inbound_nodes: [string, number, number, Record<string, unknown>][][];
}

export interface KerasTopology {
  model_config: { class_name: string; config: { layers: KerasLayer[]; input_layers: [string, number, number][]; output_layers: [string, number, number][] } };
}

export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
  quantization?: { min?: number; scale?: number; dtype: 'uint8' | 'uint16' | 'float16' };
}

export class KerasConversionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KerasConversionError';
  }
}

interface Weight {
  shape: number[];
  values: Float32Array;
}

/** Reads the weights binary per its manifest, dequantising uint8/uint16 (`q * scale + min`). */
export function readWeights(specs: WeightSpec[], data: Uint8Array): Map<string, Weight> {
  const out = new Map<string, Weight>();
  let offset = 0;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (const s of specs) {
    const count = s.shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(count);
    const q = s.quantization;
    if (q === undefined) {
      if (s.dtype !== 'float32') throw new KerasConversionError(`weight ${s.name}: dtype ${s.dtype} is not converted`);
      for (let i = 0; i < count; i += 1) values[i] = view.getFloat32(offset + 4 * i, true);
      offset += 4 * count;
    } else if (q.dtype === 'uint8' || q.dtype === 'uint16') {
      const bytes = q.dtype === 'uint8' ? 1 : 2;
      const scale = q.scale ?? 1;
      const min = q.min ?? 0;
      for (let i = 0; i < count; i += 1) values[i] = (bytes === 1 ? view.getUint8(offset + i) : view.getUint16(offset + 2 * i, true)) * scale + min;
      offset += bytes * count;
    } else {
      throw new KerasConversionError(`weight ${s.name}: quantization ${q.dtype} is not converted`);
    }
    if (offset > data.byteLength) throw new KerasConversionError(`weights end before ${s.name}: ${data.byteLength} bytes for a manifest that needs more`);
    out.set(s.name, { shape: s.shape, values });
  }
  if (offset !== data.byteLength) throw new KerasConversionError(`the weights manifest covers ${offset} of ${data.byteLength} bytes`);
  return out;
}

/** HWIO (Keras Conv2D) -> OIHW (ONNX Conv). */
function convKernel(w: Weight): Weight {
  const [h, k, i, o] = w.shape as [number, number, number, number];
  const v = new Float32Array(w.values.length);
  for (let y = 0; y < h; y += 1) for (let x = 0; x < k; x += 1) for (let c = 0; c < i; c += 1) for (let f = 0; f < o; f += 1) v[((f * i + c) * h + y) * k + x] = w.values[((y * k + x) * i + c) * o + f]!;
  return { shape: [o, i, h, k], values: v };
}

/** H W C M (Keras DepthwiseConv2D) -> (C*M) 1 H W with group = C. */
function depthwiseKernel(w: Weight): Weight {
  const [h, k, c, m] = w.shape as [number, number, number, number];
  const v = new Float32Array(w.values.length);
  for (let y = 0; y < h; y += 1) for (let x = 0; x < k; x += 1) for (let ch = 0; ch < c; ch += 1) for (let j = 0; j < m; j += 1) v[((ch * m + j) * h + y) * k + x] = w.values[((y * k + x) * c + ch) * m + j]!;
  return { shape: [c * m, 1, h, k], values: v };
}

const pair = (v: unknown, what: string): [number, number] => {
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number')) return [v[0] as number, v[1] as number];
  throw new KerasConversionError(`${what}: expected a number or a pair, got ${JSON.stringify(v)}`);
};

export interface ConvertedModel {
  bytes: Uint8Array;
  inputName: string;
  outputName: string;
  /** ONNX tensor name of each Keras layer's output (NCHW inside for 4-D tensors). */
  tensors: Record<string, string>;
}

/** Converts; `weights` keyed as the manifest names them (`<layer>/<kernel|bias|gamma|...>`). */
export function convertKerasModel(topology: KerasTopology, weights: Map<string, Weight>, opts: { producer: string; docString: string }): ConvertedModel {
  const cfg = topology.model_config.config;
  if (cfg.input_layers.length !== 1 || cfg.output_layers.length !== 1) throw new KerasConversionError('only models with one input and one output are converted');
  const nodes: OnnxNode[] = [];
  const inits: OnnxTensor[] = [];
  /** Keras layer name -> ONNX tensor and whether it is 4-D NCHW. */
  const tensors = new Map<string, { name: string; spatial: boolean }>();
  const used = new Set<string>();
  const weight = (layer: string, part: string): Weight => {
    const w = weights.get(`${layer}/${part}`);
    if (!w) throw new KerasConversionError(`layer ${layer} has no weight ${part}`);
    used.add(`${layer}/${part}`);
    return w;
  };
  const init = (name: string, w: Weight) => {
    inits.push(floatTensor(name, w.shape, w.values));
    return name;
  };
  let inputName = '';
  let inputShape: (number | null)[] = [];
  for (const layer of cfg.layers) {
    const c = layer.config;
    const inbound = (layer.inbound_nodes[0] ?? []).map(([name]) => {
      const t = tensors.get(name);
      if (!t) throw new KerasConversionError(`layer ${layer.name} reads ${name}, which is not converted yet`);
      return t;
    });
    const x = inbound[0];
    const out = layer.name;
    const need4d = () => {
      if (!x?.spatial) throw new KerasConversionError(`layer ${layer.name} (${layer.class_name}) needs a 4-D input`);
      return x.name;
    };
    const activation = (from: string, act: unknown): string => {
      if (act === undefined || act === 'linear') return from;
      const op = act === 'relu' ? 'Relu' : act === 'softmax' ? 'Softmax' : act === 'sigmoid' ? 'Sigmoid' : null;
      if (op === null) throw new KerasConversionError(`layer ${layer.name}: activation ${String(act)} is not converted`);
      nodes.push({ op_type: op, name: `${out}/${op}`, input: [from], output: [`${out}/${op}:0`], attribute: op === 'Softmax' ? [{ name: 'axis', type: ATTR.INT, i: -1 }] : [] });
      return `${out}/${op}:0`;
    };
    switch (layer.class_name) {
      case 'InputLayer': {
        inputName = out;
        inputShape = c.batch_input_shape as (number | null)[];
        if (inputShape.length !== 4) throw new KerasConversionError(`input ${out} is not an image batch: ${JSON.stringify(inputShape)}`);
        nodes.push({ op_type: 'Transpose', name: `${out}/to_nchw`, input: [out], output: [`${out}/nchw`], attribute: [{ name: 'perm', type: ATTR.INTS, ints: [0, 3, 1, 2] }] });
        tensors.set(out, { name: `${out}/nchw`, spatial: true });
        continue;
      }
      case 'ZeroPadding2D': {
        const p = c.padding as [[number, number], [number, number]];
        const pads = int64Tensor(`${out}/pads`, [8], [0, 0, p[0][0], p[1][0], 0, 0, p[0][1], p[1][1]]);
        inits.push(pads);
        nodes.push({ op_type: 'Pad', name: out, input: [need4d(), pads.name], output: [`${out}:0`] });
        tensors.set(out, { name: `${out}:0`, spatial: true });
        continue;
      }
      case 'Conv2D':
      case 'DepthwiseConv2D': {
        const depthwise = layer.class_name === 'DepthwiseConv2D';
        const kernel = depthwise ? depthwiseKernel(weight(out, 'depthwise_kernel')) : convKernel(weight(out, 'kernel'));
        const strides = pair(c.strides, `${out}.strides`);
        const dilations = pair(c.dilation_rate ?? 1, `${out}.dilation_rate`);
        const attrs: OnnxAttribute[] = [
          { name: 'strides', type: ATTR.INTS, ints: strides },
          { name: 'dilations', type: ATTR.INTS, ints: dilations },
          { name: 'kernel_shape', type: ATTR.INTS, ints: kernel.shape.slice(2) },
        ];
        if (c.padding === 'same') attrs.push({ name: 'auto_pad', type: ATTR.STRING, s: new TextEncoder().encode('SAME_UPPER') });
        else if (c.padding !== 'valid') throw new KerasConversionError(`layer ${out}: padding ${String(c.padding)} is not converted`);
        if (depthwise) attrs.push({ name: 'group', type: ATTR.INT, i: kernel.shape[0]! });
        const inputs = [need4d(), init(`${out}/W`, kernel)];
        if (c.use_bias === true) inputs.push(init(`${out}/B`, weight(out, 'bias')));
        nodes.push({ op_type: 'Conv', name: out, input: inputs, output: [`${out}:0`], attribute: attrs });
        tensors.set(out, { name: activation(`${out}:0`, c.activation), spatial: true });
        continue;
      }
      case 'BatchNormalization': {
        if (c.axis !== -1 && c.axis !== 3 && !(Array.isArray(c.axis) && c.axis[0] === 3)) throw new KerasConversionError(`layer ${out}: batch normalisation over axis ${JSON.stringify(c.axis)} is not converted`);
        const mean = weight(out, 'moving_mean');
        const n = mean.values.length;
        const gamma = c.scale === false ? { shape: [n], values: new Float32Array(n).fill(1) } : weight(out, 'gamma');
        const beta = c.center === false ? { shape: [n], values: new Float32Array(n) } : weight(out, 'beta');
        const inputs = [need4d(), init(`${out}/scale`, gamma), init(`${out}/bias`, beta), init(`${out}/mean`, mean), init(`${out}/var`, weight(out, 'moving_variance'))];
        nodes.push({ op_type: 'BatchNormalization', name: out, input: inputs, output: [`${out}:0`], attribute: [{ name: 'epsilon', type: ATTR.FLOAT, f: Number(c.epsilon ?? 1e-3) }] });
        tensors.set(out, { name: `${out}:0`, spatial: true });
        continue;
      }
      case 'ReLU': {
        if (c.negative_slope !== undefined && c.negative_slope !== 0) throw new KerasConversionError(`layer ${out}: leaky ReLU is not converted`);
        const inputs = [x!.name];
        if (typeof c.max_value === 'number') {
          inputs.push(init(`${out}/min`, { shape: [], values: new Float32Array([Number(c.threshold ?? 0)]) }), init(`${out}/max`, { shape: [], values: new Float32Array([c.max_value]) }));
          nodes.push({ op_type: 'Clip', name: out, input: inputs, output: [`${out}:0`] });
        } else {
          nodes.push({ op_type: 'Relu', name: out, input: inputs, output: [`${out}:0`] });
        }
        tensors.set(out, { name: `${out}:0`, spatial: x!.spatial });
        continue;
      }
      case 'Add': {
        if (inbound.length !== 2) throw new KerasConversionError(`layer ${out}: only two-input Add is converted`);
        nodes.push({ op_type: 'Add', name: out, input: inbound.map((t) => t.name), output: [`${out}:0`] });
        tensors.set(out, { name: `${out}:0`, spatial: inbound[0]!.spatial });
        continue;
      }
      case 'AveragePooling2D':
      case 'GlobalAveragePooling2D': {
        if (layer.class_name === 'GlobalAveragePooling2D') {
          nodes.push({ op_type: 'GlobalAveragePool', name: out, input: [need4d()], output: [`${out}/pooled`] });
          nodes.push({ op_type: 'Flatten', name: `${out}/flatten`, input: [`${out}/pooled`], output: [`${out}:0`], attribute: [{ name: 'axis', type: ATTR.INT, i: 1 }] });
          tensors.set(out, { name: `${out}:0`, spatial: false });
          continue;
        }
        if (c.padding !== 'valid') throw new KerasConversionError(`layer ${out}: padding ${String(c.padding)} is not converted`);
        nodes.push({
          op_type: 'AveragePool',
          name: out,
          input: [need4d()],
          output: [`${out}:0`],
          attribute: [
            { name: 'kernel_shape', type: ATTR.INTS, ints: pair(c.pool_size, `${out}.pool_size`) },
            { name: 'strides', type: ATTR.INTS, ints: pair(c.strides ?? c.pool_size, `${out}.strides`) },
          ],
        });
        tensors.set(out, { name: `${out}:0`, spatial: true });
        continue;
      }
      case 'Flatten': {
        // Keras flattens channels-last: back to NHWC first so the element order matches.
        const from = x!.spatial ? `${out}/nhwc` : x!.name;
        if (x!.spatial) nodes.push({ op_type: 'Transpose', name: `${out}/to_nhwc`, input: [x!.name], output: [from], attribute: [{ name: 'perm', type: ATTR.INTS, ints: [0, 2, 3, 1] }] });
        nodes.push({ op_type: 'Flatten', name: out, input: [from], output: [`${out}:0`], attribute: [{ name: 'axis', type: ATTR.INT, i: 1 }] });
        tensors.set(out, { name: `${out}:0`, spatial: false });
        continue;
      }
      case 'Dense': {
        if (x!.spatial) throw new KerasConversionError(`layer ${out}: Dense on a 4-D tensor is not converted`);
        nodes.push({ op_type: 'MatMul', name: `${out}/matmul`, input: [x!.name, init(`${out}/W`, weight(out, 'kernel'))], output: [`${out}/xw`] });
        let y = `${out}/xw`;
        if (c.use_bias !== false) {
          nodes.push({ op_type: 'Add', name: `${out}/bias_add`, input: [y, init(`${out}/B`, weight(out, 'bias'))], output: [`${out}:0`] });
          y = `${out}:0`;
        }
        tensors.set(out, { name: activation(y, c.activation), spatial: false });
        continue;
      }
      case 'Dropout':
        tensors.set(out, x!);
        continue;
      default:
        throw new KerasConversionError(`layer ${layer.name}: Keras layer ${layer.class_name} is not converted`);
    }
  }
  const unused = [...weights.keys()].filter((k) => !used.has(k));
  if (unused.length > 0) throw new KerasConversionError(`weights not used by any converted layer: ${unused.join(', ')}`);
  const output = tensors.get(cfg.output_layers[0]![0])!;
  const outputName = 'output';
  nodes.push({ op_type: 'Identity', name: 'output', input: [output.name], output: [outputName] });
  const [, h, w, ch] = inputShape;
  const bytes = encodeModel({
    ir_version: 8,
    producer_name: opts.producer,
    producer_version: '1',
    doc_string: opts.docString,
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'converted_keras_model',
      node: nodes,
      initializer: inits,
      input: [{ name: inputName, type: tensorType(ELEM.FLOAT, ['batch', h ?? 'height', w ?? 'width', ch ?? 3]) }],
      output: [{ name: outputName, type: tensorType(ELEM.FLOAT, ['batch', 'outputs']) }],
    },
  });
  return { bytes, inputName, outputName, tensors: Object.fromEntries([...tensors].map(([k, v]) => [k, v.name])) };
}
