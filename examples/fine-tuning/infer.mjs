// Classifies one image with a model served over the Open Inference Protocol
// (the builtin server or Triton), decoding it as the linear-probe trainer does:
//
//   node_modules/.bin/node examples/fine-tuning/infer.mjs IMAGE ENDPOINT [SIZE]
//
// ENDPOINT is the model's URL, e.g. http://127.0.0.1:8000/v2/models/site-classifier
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { decodeImage } from '../../dist/apps/agent/src/finetune/image-embedder.js';

const [image, endpoint, size = '224'] = process.argv.slice(2);
if (!image || !endpoint) {
  process.stderr.write('usage: infer.mjs IMAGE ENDPOINT [SIZE]\n');
  process.exit(2);
}
const side = Number(size);
const pixels = await decodeImage(path.resolve(image), { width: side, height: side });
const res = await fetch(`${endpoint}/infer`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ inputs: [{ name: 'image', datatype: 'FP32', shape: [1, side, side, 3], data: Array.from(pixels) }] }),
});
if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
const out = (await res.json()).outputs.find((o) => o.name === 'probabilities');
const labelsFile = process.env.LABELS;
const labels = labelsFile ? (await readFile(labelsFile, 'utf8')).trim().split('\n') : out.data.map((_, i) => `class ${i}`);
const best = out.data.indexOf(Math.max(...out.data));
process.stdout.write(`${labels[best]} (${out.data.map((p, i) => `${labels[i]}=${p.toFixed(3)}`).join(', ')})\n`);
