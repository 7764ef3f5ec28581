import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ModelInput } from '@flotilla/contracts';
import { convertKerasModel, readWeights, type KerasTopology, type WeightSpec } from './keras-to-onnx.js';

/**
 * The real backbone the fine-tuning tests and demo use: the MobileNetV2
 * (alpha 1.0, 224x224) that the `nsfwjs` npm package ships as a Keras model
 * for TensorFlow.js, with its uint8-quantised weights inside the package (so
 * nothing is downloaded). Its ImageNet-style convolutional trunk was
 * fine-tuned by nsfwjs's authors for a 5-class image task; the linear probe
 * reads the 1280-wide pooled features before nsfwjs's own dense layers.
 */

export const NSFWJS_MOBILENET_INPUT: ModelInput = {
  width: 224,
  height: 224,
  layout: 'NHWC',
  // nsfwjs feeds pixels / 255 with no mean or std.
  scale: 1 / 255,
  mean: [0, 0, 0],
  std: [1, 1, 1],
  embeddingOutput: 'average_pooling2d_1:0',
};

export interface NsfwjsModelFiles {
  topology: KerasTopology;
  weightSpecs: WeightSpec[];
  weightData: Uint8Array;
  packageVersion: string;
}

/** The Keras topology and weights as the installed nsfwjs package holds them (UMD modules wrapping JSON and base64). */
export function loadNsfwjsMobilenet(): NsfwjsModelFiles {
  const require = createRequire(import.meta.url);
  const entry = require.resolve('nsfwjs');
  let root = path.dirname(entry);
  while (path.basename(root) !== 'nsfwjs') {
    const parent = path.dirname(root);
    if (parent === root) throw new Error(`cannot find the nsfwjs package root above ${entry}`);
    root = parent;
  }
  const modelDir = path.join(root, 'dist', 'models', 'mobilenet_v2');
  const load = createRequire(path.join(modelDir, 'index.js'));
  const modelJson = load(path.join(modelDir, 'model.min.js')) as { modelTopology: KerasTopology; weightsManifest: { paths: string[]; weights: WeightSpec[] }[] };
  const manifest = modelJson.weightsManifest;
  if (manifest.length !== 1 || manifest[0]!.paths.length !== 1) throw new Error('expected one weights group with one shard in nsfwjs mobilenet_v2');
  const shard = load(path.join(modelDir, `${manifest[0]!.paths[0]}.min.js`)) as string;
  const packageVersion = (load(path.join(root, 'package.json')) as { version: string }).version;
  return { topology: modelJson.modelTopology, weightSpecs: manifest[0]!.weights, weightData: new Uint8Array(Buffer.from(shard, 'base64')), packageVersion };
}

export interface ConvertedBackbone {
  bytes: Uint8Array;
  digest: string;
  input: ModelInput;
  packageVersion: string;
}

export function convertNsfwjsMobilenet(): ConvertedBackbone {
  const files = loadNsfwjsMobilenet();
  const converted = convertKerasModel(files.topology, readWeights(files.weightSpecs, files.weightData), {
    producer: 'flotilla-keras-to-onnx',
    docString: `MobileNetV2 from the nsfwjs ${files.packageVersion} npm package (MIT), converted from its TensorFlow.js Keras model`,
  });
  if (!Object.values(converted.tensors).includes(NSFWJS_MOBILENET_INPUT.embeddingOutput!)) {
    throw new Error(`the converted model has no tensor ${NSFWJS_MOBILENET_INPUT.embeddingOutput}`);
  }
  return { bytes: converted.bytes, digest: `sha256:${createHash('sha256').update(converted.bytes).digest('hex')}`, input: NSFWJS_MOBILENET_INPUT, packageVersion: files.packageVersion };
}

/** `node nsfwjs-mobilenet.js OUT.onnx`: writes the converted model and prints its digest, size and input declaration as JSON. */
async function main(): Promise<void> {
  const out = path.resolve(process.argv[2] ?? 'mobilenet-v2.onnx');
  const backbone = convertNsfwjsMobilenet();
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, backbone.bytes);
  process.stdout.write(`${JSON.stringify({ file: out, digest: backbone.digest, sizeBytes: backbone.bytes.length, input: backbone.input, nsfwjs: backbone.packageVersion })}\n`);
}

const invoked = process.argv[1];
if (invoked !== undefined && import.meta.url === pathToFileURL(invoked).href) await main();
