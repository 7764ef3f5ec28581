import type { Tensor } from 'onnxruntime-node';
import { badRequest } from './errors.js';

/**
 * Tensor datatypes of the Open Inference Protocol (the Triton names) and the
 * ONNX Runtime tensor types they map to. FP16 and BF16 are listed by the
 * protocol but have no JSON representation that ONNX Runtime's Node binding
 * accepts without a manual bit conversion, so they are refused with a clear
 * error rather than silently rounded.
 */
export const V2_DATATYPES = [
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'FP32',
  'FP64',
  'BYTES',
] as const;
export type V2Datatype = (typeof V2_DATATYPES)[number];

type SupportedOrtType = Exclude<Tensor.Type, 'float16' | 'uint4' | 'int4'>;

const V2_TO_ORT: Record<V2Datatype, SupportedOrtType | null> = {
  BOOL: 'bool',
  UINT8: 'uint8',
  UINT16: 'uint16',
  UINT32: 'uint32',
  UINT64: 'uint64',
  INT8: 'int8',
  INT16: 'int16',
  INT32: 'int32',
  INT64: 'int64',
  FP16: null,
  FP32: 'float32',
  FP64: 'float64',
  BYTES: 'string',
};

const ORT_TO_V2: Partial<Record<Tensor.Type, V2Datatype>> = {
  bool: 'BOOL',
  uint8: 'UINT8',
  uint16: 'UINT16',
  uint32: 'UINT32',
  uint64: 'UINT64',
  int8: 'INT8',
  int16: 'INT16',
  int32: 'INT32',
  int64: 'INT64',
  float16: 'FP16',
  float32: 'FP32',
  float64: 'FP64',
  string: 'BYTES',
};

export function isV2Datatype(value: unknown): value is V2Datatype {
  return typeof value === 'string' && (V2_DATATYPES as readonly string[]).includes(value);
}

/** The v2 name of an ONNX Runtime tensor type, for metadata and responses. */
export function v2DatatypeOf(ortType: Tensor.Type): V2Datatype {
  const v2 = ORT_TO_V2[ortType];
  if (!v2) throw new Error(`ONNX tensor type ${ortType} has no Open Inference Protocol datatype`);
  return v2;
}

export function ortTypeOf(datatype: V2Datatype): SupportedOrtType {
  const ort = V2_TO_ORT[datatype];
  if (!ort) throw badRequest(`datatype ${datatype} is not supported by this server (JSON tensors only carry BOOL, integer, FP32, FP64 and BYTES)`);
  return ort;
}

const INTEGER_RANGES: Partial<Record<SupportedOrtType, readonly [number, number]>> = {
  uint8: [0, 0xff],
  uint16: [0, 0xffff],
  uint32: [0, 0xffffffff],
  int8: [-0x80, 0x7f],
  int16: [-0x8000, 0x7fff],
  int32: [-0x80000000, 0x7fffffff],
  // 64-bit integers travel as JSON numbers, so only the exactly representable range is accepted.
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint64: [0, Number.MAX_SAFE_INTEGER],
};

/**
 * Converts flat JSON values into the typed array ONNX Runtime wants, checking
 * every element; `where` names the input in error messages.
 */
export function toTypedData(type: SupportedOrtType, values: readonly unknown[], where: string): Tensor.DataTypeMap[SupportedOrtType] {
  const elementError = (index: number, expected: string) =>
    badRequest(`${where}: element ${index} is ${JSON.stringify(values[index]) ?? String(values[index])}, expected ${expected}`);

  if (type === 'string') {
    return values.map((v, i) => {
      if (typeof v !== 'string') throw elementError(i, 'a string (BYTES)');
      return v;
    });
  }
  if (type === 'bool') {
    const out = new Uint8Array(values.length);
    values.forEach((v, i) => {
      if (typeof v !== 'boolean') throw elementError(i, 'true or false (BOOL)');
      out[i] = v ? 1 : 0;
    });
    return out;
  }
  if (type === 'float32' || type === 'float64') {
    const out = type === 'float32' ? new Float32Array(values.length) : new Float64Array(values.length);
    values.forEach((v, i) => {
      if (typeof v !== 'number' || !Number.isFinite(v)) throw elementError(i, 'a finite number');
      out[i] = v;
    });
    return out;
  }
  const range = INTEGER_RANGES[type];
  if (!range) throw new Error(`no integer range for ${type}`);
  const [lo, hi] = range;
  const check = (v: unknown, i: number): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
      throw elementError(i, `an integer in [${lo}, ${hi}]`);
    }
    return v;
  };
  switch (type) {
    case 'int64':
      return BigInt64Array.from(values, (v, i) => BigInt(check(v, i)));
    case 'uint64':
      return BigUint64Array.from(values, (v, i) => BigInt(check(v, i)));
    case 'uint8':
      return Uint8Array.from(values, check);
    case 'uint16':
      return Uint16Array.from(values, check);
    case 'uint32':
      return Uint32Array.from(values, check);
    case 'int8':
      return Int8Array.from(values, check);
    case 'int16':
      return Int16Array.from(values, check);
    case 'int32':
      return Int32Array.from(values, check);
  }
}

/** Typed array from ONNX Runtime back to JSON values. */
export function fromTypedData(type: Tensor.Type, data: Tensor.DataType): (number | boolean | string)[] {
  if (type === 'bool') return Array.from(data as Uint8Array, (v) => v !== 0);
  if (type === 'string') return [...(data as string[])];
  if (type === 'int64' || type === 'uint64') return Array.from(data as BigInt64Array | BigUint64Array, (v) => Number(v));
  return Array.from(data as ArrayLike<number>);
}
