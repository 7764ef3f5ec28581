import { Tensor } from 'onnxruntime-node';
import { fromTypedData, isV2Datatype, ortTypeOf, toTypedData, type V2Datatype, V2_DATATYPES, v2DatatypeOf } from './datatypes.js';
import { badRequest } from './errors.js';
import type { ModelSignature, TensorSpec } from './signature.js';

/** Deepest nesting accepted in `data`; real tensors rarely pass 6, and the limit keeps recursion bounded. */
const MAX_DATA_DEPTH = 32;

export interface DecodedInferRequest {
  id: string | undefined;
  feeds: Record<string, Tensor>;
  /** Outputs to fetch, in the order the response lists them. */
  outputNames: string[];
  /** Size of the first dimension of the first input (1 for scalars): Triton's inference count. */
  batchSize: number;
}

export interface V2OutputTensor {
  name: string;
  datatype: V2Datatype;
  shape: number[];
  data: (number | boolean | string)[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function flatten(data: unknown, where: string): unknown[] {
  if (!Array.isArray(data)) throw badRequest(`${where}: "data" must be an array (flat or nested in row-major order)`);
  const out: unknown[] = [];
  const walk = (value: unknown[], depth: number): void => {
    if (depth > MAX_DATA_DEPTH) throw badRequest(`${where}: "data" is nested deeper than ${MAX_DATA_DEPTH} levels`);
    for (const v of value) {
      if (Array.isArray(v)) walk(v, depth + 1);
      else out.push(v);
    }
  };
  walk(data, 1);
  return out;
}

function parseShape(shape: unknown, where: string): number[] {
  if (!Array.isArray(shape)) throw badRequest(`${where}: "shape" must be an array of non-negative integers`);
  return shape.map((d, i) => {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw badRequest(`${where}: shape[${i}] is ${JSON.stringify(d)}, expected a non-negative integer`);
    }
    return d;
  });
}

const formatShape = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

function checkShapeAgainstSpec(shape: number[], spec: TensorSpec, where: string): void {
  const expected = formatShape(spec.shape).replaceAll('-1', '?');
  if (shape.length !== spec.shape.length) {
    throw badRequest(`${where}: shape ${formatShape(shape)} has rank ${shape.length}, the model expects rank ${spec.shape.length} ${expected}`);
  }
  spec.shape.forEach((dim, i) => {
    if (dim >= 0 && shape[i] !== dim) {
      throw badRequest(`${where}: shape ${formatShape(shape)} does not match the model's ${expected} at dimension ${i}`);
    }
  });
}

/**
 * Validates a v2 JSON inference request against the model's signature and
 * turns it into ONNX Runtime feeds. Every problem is a 400 whose message names
 * the input and what was expected.
 */
export function decodeInferRequest(body: unknown, signature: ModelSignature): DecodedInferRequest {
  if (!isObject(body)) throw badRequest('request body must be a JSON object with an "inputs" array');
  const { id, inputs, outputs, parameters } = body;
  if (id !== undefined && typeof id !== 'string') throw badRequest('"id" must be a string');
  if (parameters !== undefined && !isObject(parameters)) throw badRequest('"parameters" must be an object');
  if (isObject(parameters) && (parameters.binary_data_output === true || parameters.binary_data === true)) {
    throw badRequest('the binary tensor data extension is not supported; send JSON "data"');
  }
  if (!Array.isArray(inputs) || inputs.length === 0) throw badRequest('"inputs" must be a non-empty array');

  const specs = new Map(signature.inputs.map((s) => [s.name, s]));
  const feeds: Record<string, Tensor> = {};
  let batchSize: number | undefined;

  inputs.forEach((input, index) => {
    if (!isObject(input)) throw badRequest(`inputs[${index}] must be an object`);
    const { name, datatype, shape, data, parameters: inputParameters } = input;
    if (typeof name !== 'string' || name === '') throw badRequest(`inputs[${index}]: "name" must be a non-empty string`);
    const where = `input "${name}"`;
    const spec = specs.get(name);
    if (!spec) {
      throw badRequest(`${where} is not an input of this model; inputs are ${signature.inputs.map((s) => `"${s.name}"`).join(', ')}`);
    }
    if (feeds[name]) throw badRequest(`${where} is given more than once`);
    if (isObject(inputParameters) && inputParameters.binary_data_size !== undefined) {
      throw badRequest(`${where}: the binary tensor data extension is not supported; send JSON "data"`);
    }
    if (!isV2Datatype(datatype)) {
      throw badRequest(`${where}: datatype ${JSON.stringify(datatype)} is not one of ${V2_DATATYPES.join(', ')}`);
    }
    if (datatype !== spec.datatype) throw badRequest(`${where}: datatype ${datatype} does not match the model's ${spec.datatype}`);
    const dims = parseShape(shape, where);
    checkShapeAgainstSpec(dims, spec, where);
    const values = flatten(data, where);
    const count = dims.reduce((a, b) => a * b, 1);
    if (values.length !== count) {
      throw badRequest(`${where}: shape ${formatShape(dims)} holds ${count} elements but "data" has ${values.length}`);
    }
    const ortType = ortTypeOf(datatype);
    feeds[name] = new Tensor(ortType, toTypedData(ortType, values, where), dims);
    batchSize ??= dims.length > 0 ? (dims[0] ?? 1) : 1;
  });

  const missing = signature.inputs.filter((s) => !feeds[s.name]).map((s) => `"${s.name}"`);
  if (missing.length > 0) throw badRequest(`missing input ${missing.join(', ')}`);

  let outputNames = signature.outputs.map((s) => s.name);
  if (outputs !== undefined) {
    if (!Array.isArray(outputs)) throw badRequest('"outputs" must be an array of {"name": ...}');
    const known = new Set(outputNames);
    outputNames = outputs.map((o, i) => {
      if (!isObject(o) || typeof o.name !== 'string') throw badRequest(`outputs[${i}] must be an object with a string "name"`);
      if (isObject(o.parameters) && o.parameters.binary_data === true) {
        throw badRequest(`output "${o.name}": the binary tensor data extension is not supported`);
      }
      if (!known.has(o.name)) {
        throw badRequest(`output "${o.name}" is not an output of this model; outputs are ${[...known].map((n) => `"${n}"`).join(', ')}`);
      }
      return o.name;
    });
    if (new Set(outputNames).size !== outputNames.length) throw badRequest('"outputs" names an output more than once');
  }

  return { id, feeds, outputNames, batchSize: batchSize ?? 1 };
}

/** ONNX Runtime results to v2 response outputs, in the requested order. */
export function encodeOutputs(results: Record<string, Tensor>, outputNames: readonly string[]): V2OutputTensor[] {
  return outputNames.map((name) => {
    const tensor = results[name];
    if (!tensor) throw new Error(`ONNX Runtime returned no value for output "${name}"`);
    if (tensor.type === 'float16' || tensor.type === 'int4' || tensor.type === 'uint4') {
      throw new Error(`output "${name}" has type ${tensor.type}, which JSON responses cannot carry`);
    }
    const datatype = v2DatatypeOf(tensor.type);
    return { name, datatype, shape: [...tensor.dims], data: fromTypedData(tensor.type, tensor.data) };
  });
}
