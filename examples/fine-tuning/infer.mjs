// Classifies one image with a model served over the Open Inference Protocol
// (the builtin server or Triton), decoding it as the linear-probe trainer does:
//
//   node_modules/.bin/node examples/fine-tuning/infer.mjs IMAGE ENDPOINT
//
// ENDPOINT is the model's URL, e.g. http://127.0.0.1:8000/v2/models/site-classifier.
// The input is laid out as the served model's metadata says: a fine-tuned
// classifier takes RGB pixels as decoded (0..255, NHWC, input "image"); the
// base backbone takes them scaled to 0..1. Prints the version that answered,
// the output tensor's name and shape, and the best class (named from LABELS,
// a labels.txt, when given).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { decodeImage } from '../../dist/apps/agent/src/finetune/image-embedder.js';

const [image, endpoint] = process.argv.slice(2);
if (!image || !endpoint) {
  process.stderr.write('usage: infer.mjs IMAGE ENDPOINT\n');
  process.exit(2);
}
const meta = await (await fetch(endpoint)).json();
const input = meta.inputs[0];
const shape = input.shape.map((d) => (d < 0 ? 1 : d));
const nchw = shape[1] === 3;
const [height, width] = nchw ? [shape[2], shape[3]] : [shape[1], shape[2]];
const pixels = await decodeImage(path.resolve(image), { width, height });
const scale = input.name === 'image' ? 1 : 1 / 255;
let data = Array.from(pixels, (v) => v * scale);
if (nchw) data = [0, 1, 2].flatMap((c) => data.filter((_, i) => i % 3 === c));
const res = await fetch(`${endpoint}/infer`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ inputs: [{ name: input.name, datatype: 'FP32', shape, data }] }),
});
if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
const body = await res.json();
const out = body.outputs.find((o) => o.name === 'probabilities') ?? body.outputs[0];
const labelsFile = process.env.LABELS;
const labels = labelsFile ? (await readFile(labelsFile, 'utf8')).trim().split('\n') : out.data.map((_, i) => `class ${i}`);
const best = out.data.indexOf(Math.max(...out.data));
process.stdout.write(
  `version ${body.model_version}, output ${out.name} [${out.shape.join(', ')}]: ${labels[best]} (${out.data.map((p, i) => `${labels[i]}=${p.toFixed(3)}`).join(', ')})\n`,
);
