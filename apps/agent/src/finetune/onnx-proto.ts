import protobuf from 'protobufjs';

/**
 * The parts of onnx/onnx.proto (field numbers as there) that a classifier
 * graph uses, so a backbone can be decoded, extended with preprocessing and a
 * head, and encoded again without Python. Models that need what this schema
 * leaves out (external data, functions, training info) are refused by
 * `decodeModel` rather than silently truncated.
 */
const ONNX_PROTO = `
syntax = "proto3";
package onnx;
message OperatorSetIdProto { string domain = 1; int64 version = 2; }
message StringStringEntryProto { string key = 1; string value = 2; }
message TensorShapeProto {
  message Dimension { oneof value { int64 dim_value = 1; string dim_param = 2; } string denotation = 3; }
  repeated Dimension dim = 1;
}
message TypeProto {
  message Tensor { int32 elem_type = 1; TensorShapeProto shape = 2; }
  oneof value { Tensor tensor_type = 1; }
  string denotation = 6;
}
message ValueInfoProto { string name = 1; TypeProto type = 2; string doc_string = 3; }
message TensorProto {
  repeated int64 dims = 1;
  int32 data_type = 2;
  repeated float float_data = 4;
  repeated int32 int32_data = 5;
  repeated bytes string_data = 6;
  repeated int64 int64_data = 7;
  string name = 8;
  bytes raw_data = 9;
  repeated double double_data = 10;
  repeated uint64 uint64_data = 11;
  string doc_string = 12;
  repeated StringStringEntryProto external_data = 13;
  int32 data_location = 14;
}
message AttributeProto {
  string name = 1;
  float f = 2;
  int64 i = 3;
  bytes s = 4;
  TensorProto t = 5;
  GraphProto g = 6;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  repeated TensorProto tensors = 10;
  repeated GraphProto graphs = 11;
  string doc_string = 13;
  int32 type = 20;
  string ref_attr_name = 21;
}
message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  string name = 3;
  string op_type = 4;
  repeated AttributeProto attribute = 5;
  string doc_string = 6;
  string domain = 7;
}
message GraphProto {
  repeated NodeProto node = 1;
  string name = 2;
  repeated TensorProto initializer = 5;
  string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
}
message ModelProto {
  int64 ir_version = 1;
  string producer_name = 2;
  string producer_version = 3;
  string domain = 4;
  int64 model_version = 5;
  string doc_string = 6;
  GraphProto graph = 7;
  repeated OperatorSetIdProto opset_import = 8;
  repeated StringStringEntryProto metadata_props = 14;
  repeated bytes training_info = 20;
  repeated bytes functions = 25;
}
`;

/** TensorProto.DataType values used here. */
export const ELEM = { FLOAT: 1, INT64: 7 } as const;
/** AttributeProto.AttributeType values used here. */
export const ATTR = { FLOAT: 1, INT: 2, STRING: 3, INTS: 7 } as const;

export interface OnnxDim { dim_value?: number | Long; dim_param?: string }
export interface OnnxValueInfo { name: string; type?: { tensor_type?: { elem_type?: number; shape?: { dim?: OnnxDim[] } } } }
export interface OnnxAttribute { name: string; type: number; f?: number; i?: number; ints?: number[]; s?: Uint8Array }
export interface OnnxNode { name?: string; op_type: string; input: string[]; output: string[]; attribute?: OnnxAttribute[]; domain?: string }
export interface OnnxTensor { name: string; data_type: number; dims: number[]; float_data?: number[]; int64_data?: number[]; raw_data?: Uint8Array; data_location?: number; external_data?: unknown[] }
export interface OnnxGraph {
  name?: string;
  node: OnnxNode[];
  initializer: OnnxTensor[];
  input: OnnxValueInfo[];
  output: OnnxValueInfo[];
  value_info?: OnnxValueInfo[];
  doc_string?: string;
}
export interface OnnxModel {
  ir_version: number;
  producer_name?: string;
  producer_version?: string;
  model_version?: number;
  doc_string?: string;
  graph: OnnxGraph;
  opset_import: { domain?: string; version: number }[];
  metadata_props?: { key: string; value: string }[];
  training_info?: Uint8Array[];
  functions?: Uint8Array[];
}
type Long = { toNumber(): number };

let cachedRoot: protobuf.Root | undefined;
function modelType(): protobuf.Type {
  cachedRoot ??= protobuf.parse(ONNX_PROTO, { keepCase: true }).root;
  return cachedRoot.lookupType('onnx.ModelProto');
}

export class OnnxModelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OnnxModelError';
  }
}

/** Decodes an ONNX ModelProto; int64 values become numbers (shapes and attributes here stay far below 2^53). */
export function decodeModel(bytes: Uint8Array, what = 'model'): OnnxModel {
  let model: OnnxModel;
  try {
    const Type = modelType();
    model = Type.toObject(Type.decode(bytes), { longs: Number, bytes: Uint8Array, arrays: true, defaults: false }) as OnnxModel;
  } catch (err) {
    throw new OnnxModelError(`${what} is not an ONNX model: ${(err as Error).message}`);
  }
  if (!model.graph) throw new OnnxModelError(`${what} has no graph`);
  if ((model.functions?.length ?? 0) > 0 || (model.training_info?.length ?? 0) > 0) {
    throw new OnnxModelError(`${what} uses ONNX functions or training info, which the linear-probe trainer does not carry over`);
  }
  for (const t of model.graph.initializer ?? []) {
    if (t.data_location === 1 || (t.external_data?.length ?? 0) > 0) {
      throw new OnnxModelError(`${what} keeps initializer "${t.name}" in external data; give a single-file ONNX model`);
    }
  }
  model.graph.node ??= [];
  model.graph.initializer ??= [];
  model.graph.input ??= [];
  model.graph.output ??= [];
  return model;
}

export function encodeModel(model: OnnxModel): Uint8Array {
  const Type = modelType();
  const message = Type.fromObject(model as unknown as Record<string, unknown>);
  const problem = Type.verify(message);
  if (problem) throw new OnnxModelError(`invalid ModelProto: ${problem}`);
  return Type.encode(message).finish();
}

export function floatTensor(name: string, dims: number[], values: ArrayLike<number>): OnnxTensor {
  const f32 = Float32Array.from(values as ArrayLike<number>);
  return { name, data_type: ELEM.FLOAT, dims, raw_data: new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength) };
}

export function int64Tensor(name: string, dims: number[], values: number[]): OnnxTensor {
  return { name, data_type: ELEM.INT64, dims, int64_data: values };
}

export function tensorType(elemType: number, dims: (number | string)[]): OnnxValueInfo['type'] {
  return { tensor_type: { elem_type: elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } };
}

/** The static dims of a graph value (`null` for a symbolic or missing one). */
export function staticDims(v: OnnxValueInfo): (number | null)[] {
  return (v.type?.tensor_type?.shape?.dim ?? []).map((d) => (d.dim_value === undefined ? null : Number(d.dim_value)));
}
