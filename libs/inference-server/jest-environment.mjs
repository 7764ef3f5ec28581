/**
 * Jest runs each test file in a vm context with its own typed-array
 * constructors, but ONNX Runtime's native binding creates output tensors with
 * the main realm's, so `instanceof Float32Array` fails inside
 * onnxruntime-common and every session.run throws. Jest already shares the
 * main realm's Uint8Array and ArrayBuffer with the test context for the same
 * reason (Buffer); this environment shares the other typed arrays too.
 * Test files that run ONNX Runtime in-process opt in with the docblock
 * `@jest-environment ./libs/inference-server/jest-environment.mjs`.
 */
import { TestEnvironment } from 'jest-environment-node';

const TYPED_ARRAYS = [
  'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array',
  'Float16Array', 'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array', 'DataView',
];

class SharedTypedArraysEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of TYPED_ARRAYS) {
      if (typeof globalThis[name] === 'function') this.global[name] = globalThis[name];
    }
  }
}

export default SharedTypedArraysEnvironment;
