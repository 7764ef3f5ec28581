import * as tf from '@tensorflow/tfjs';
import ort from 'onnxruntime-node';
import { convertNsfwjsMobilenet, loadNsfwjsMobilenet } from '../../../apps/agent/src/finetune/backbones/nsfwjs-mobilenet.js';
import { decodeModel, encodeModel, ELEM, tensorType } from '../../../apps/agent/src/finetune/onnx-proto.js';
import { seededRandom } from '../../../apps/agent/src/finetune/softmax-head.js';

/**
 * Runs the original nsfwjs MobileNetV2 (TensorFlow.js, pure-JS CPU backend)
 * and its ONNX conversion (ONNX Runtime) on the same fixed inputs and prints,
 * as one JSON line, the largest differences in the pooled 1280-wide features
 * and in the 5 output probabilities. Run as a process: ONNX Runtime's native
 * tensors do not cross Jest's VM realm.
 */
const POOL = 'average_pooling2d_1';

function fixedInputs(n: number): Float32Array {
  const random = seededRandom(2024);
  const data = new Float32Array(n * 224 * 224 * 3);
  for (let i = 0; i < n; i += 1) {
    for (let y = 0; y < 224; y += 1) {
      for (let x = 0; x < 224; x += 1) {
        for (let c = 0; c < 3; c += 1) {
          // Image 0: smooth gradients with a stripe pattern; others: uniform noise.
          const v = i === 0 ? 0.5 + 0.4 * Math.sin((x + 2 * c) / 9) * Math.cos(y / 13) : random();
          data[((i * 224 + y) * 224 + x) * 3 + c] = v;
        }
      }
    }
  }
  return data;
}

async function main(): Promise<void> {
  await tf.setBackend('cpu');
  const files = loadNsfwjsMobilenet();
  const keras = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: files.topology as never, weightSpecs: files.weightSpecs as never, weightData: files.weightData.slice().buffer }));
  const probe = tf.model({ inputs: keras.inputs, outputs: [keras.getLayer(POOL).output as tf.SymbolicTensor, keras.outputs[0]!] });
  const n = 2;
  const input = fixedInputs(n);
  const [tfPool, tfOut] = probe.predict(tf.tensor4d(input, [n, 224, 224, 3])) as tf.Tensor[];
  const expectedPool = (await tfPool!.data()) as Float32Array;
  const expectedOut = (await tfOut!.data()) as Float32Array;

  const converted = convertNsfwjsMobilenet();
  const model = decodeModel(converted.bytes);
  model.graph.output.push({ name: `${POOL}:0`, type: tensorType(ELEM.FLOAT, ['batch', 1280, 1, 1]) });
  const session = await ort.InferenceSession.create(encodeModel(model), { intraOpNumThreads: 2 });
  const result = await session.run({ input_1: new ort.Tensor('float32', input, [n, 224, 224, 3]) });
  const gotPool = result[`${POOL}:0`]!.data as Float32Array;
  const gotOut = result.output!.data as Float32Array;
  const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
  const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  process.stdout.write(
    `${JSON.stringify({
      images: n,
      poolLength: [expectedPool.length, gotPool.length],
      outputLength: [expectedOut.length, gotOut.length],
      poolMaxAbsDiff: maxDiff(expectedPool, gotPool),
      poolMaxAbs: maxAbs(expectedPool),
      outputMaxAbsDiff: maxDiff(expectedOut, gotOut),
      expectedOutput: Array.from(expectedOut),
      onnxOutput: Array.from(gotOut),
      digest: converted.digest,
    })}\n`,
  );
}

await main();
