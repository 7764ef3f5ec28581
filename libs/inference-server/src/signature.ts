import type { InferenceSession } from 'onnxruntime-node';
import { type V2Datatype, v2DatatypeOf } from './datatypes.js';

/** One input or output as the Open Inference Protocol describes it: -1 marks a dynamic dimension. */
export interface TensorSpec {
  name: string;
  datatype: V2Datatype;
  shape: number[];
}

export interface ModelSignature {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

/** Reads a session's declared inputs and outputs; symbolic dimensions ("batch") become -1 as in Triton's metadata. */
export function signatureOf(session: Pick<InferenceSession, 'inputMetadata' | 'outputMetadata'>): ModelSignature {
  const toSpec = (m: InferenceSession.ValueMetadata): TensorSpec => {
    if (!m.isTensor) throw new Error(`model value "${m.name}" is not a tensor; only tensor inputs and outputs can be served`);
    return {
      name: m.name,
      datatype: v2DatatypeOf(m.type),
      shape: m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)),
    };
  };
  return { inputs: session.inputMetadata.map(toSpec), outputs: session.outputMetadata.map(toSpec) };
}
