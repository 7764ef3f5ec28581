// Prepares the fine-tuning walkthrough (examples/fine-tuning/README.md) on this
// machine, offline: converts the MobileNetV2 that the nsfwjs npm package ships
// to ONNX, writes a small labelled image dataset, and writes the policy to
// apply (a ModelDeployment serving the backbone on the local agent, and a
// FineTuneJob with promote: auto whose produced version replaces it there).
// Run from the repository root after `npm ci` (which builds dist/):
//
//   node_modules/.bin/node examples/fine-tuning/prepare.mjs [OUT_DIR]
//
// The dataset: texture patches from the photographs python3-skimage installs
// when they are there, else generated noisy-colour images (3 classes).
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { convertNsfwjsMobilenet } from '../../dist/apps/agent/src/finetune/backbones/nsfwjs-mobilenet.js';
import { writeColourDataset } from '../../dist/test/support/finetune/onnx-backbone.js';
import { textureSourcesAvailable, writeTextureDataset } from '../../dist/test/support/finetune/texture-dataset.js';

const out = path.resolve(process.argv[2] ?? '.flotilla/finetune-demo');
await mkdir(out, { recursive: true });
// The local agent reads models only under $FLOTILLA_HOME/artifacts and datasets only under
// $FLOTILLA_HOME/datasets (its source policy: docs/sources-and-ownership.md).
const home = path.resolve(process.env.FLOTILLA_HOME ?? '.flotilla');
const backbone = convertNsfwjsMobilenet();
await mkdir(path.join(home, 'artifacts', 'finetune-demo'), { recursive: true });
const modelPath = path.join(home, 'artifacts', 'finetune-demo', 'mobilenet-v2.onnx');
await writeFile(modelPath, backbone.bytes);

const dataset = path.join(home, 'datasets', 'finetune-demo');
let kind;
if (textureSourcesAvailable()) {
  await writeTextureDataset(dataset, { trainPerClass: 30, testPerClass: 15 });
  kind = 'texture patches (brick, grass, gravel) from python3-skimage';
} else {
  await writeColourDataset(dataset, 30, { size: 64 });
  kind = 'generated noisy-colour images (corrosion, crack, spalling)';
}

const input = backbone.input;
const policy = `apiVersion: flotilla.dev/v1
kind: Model
metadata: { name: site-classifier }
spec:
  task: image-classification
  versions:
    - version: "1.0.0"
      uri: "file://${modelPath}"
      digest: "${backbone.digest}"
      format: onnx
      sizeBytes: ${backbone.bytes.length}
      input: { width: ${input.width}, height: ${input.height}, layout: ${input.layout}, scale: ${input.scale}, mean: [${input.mean.join(', ')}], std: [${input.std.join(', ')}], embeddingOutput: "${input.embeddingOutput}" }
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: local-training }
spec: { selector: { matchLabels: { flotilla.dev/local: "true" } } }
---
apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: site-classifier-local }
spec:
  model: { name: site-classifier, version: "1.0.0" }
  placement: local-training
  runtime: builtin
  # A promoted version is watched like a rollout step: Ready within progressDeadline, then its
  # error ratio within maxErrorRatio for minSuccessTime (and after); else the spoke goes back to 1.0.0.
  rollout: { minSuccessTime: 30s, progressDeadline: 5m, gates: { maxErrorRatio: 0.05 } }
---
apiVersion: flotilla.dev/v1
kind: FineTuneJob
metadata: { name: site-tuning }
spec:
  baseModel: { name: site-classifier, version: "1.0.0" }
  placement: local-training
  dataset: { path: ${dataset}, format: imagefolder }
  trainer: { builtin: linear-probe, hyperparameters: { seed: 1 } }
  evaluation: { metric: accuracy, holdoutFraction: 0.2, threshold: 0.8 }
  output: { model: site-classifier, artifact: keep-local }
  promote: auto
`;
await writeFile(path.join(out, 'finetune.yaml'), policy);
await writeFile(path.join(out, 'finetune-impossible.yaml'), policy.replace('name: site-tuning', 'name: site-tuning-strict').replace('threshold: 0.8', 'threshold: 1.01'));
process.stdout.write(`backbone ${modelPath} (${backbone.digest})\ndataset  ${dataset}: ${kind}\npolicy   ${path.join(out, 'finetune.yaml')}\n`);
