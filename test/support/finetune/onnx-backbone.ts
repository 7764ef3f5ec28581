import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { ATTR, ELEM, encodeModel, floatTensor, tensorType } from '../../../apps/agent/src/finetune/onnx-proto.js';
import { seededRandom } from '../../../apps/agent/src/finetune/softmax-head.js';

/**
 * A tiny image classifier in ONNX, for trainer tests that need a backbone
 * but not a real one: NCHW [batch, 3, 32, 32] -> Conv 3x3/2 (8 filters) ->
 * Relu -> GlobalAveragePool -> Flatten -> Gemm (5 classes) -> Softmax.
 * Weights come from a fixed seed.
 */
export function buildTinyBackbone(size = 32): Uint8Array {
  const random = seededRandom(42);
  const conv = Array.from({ length: 8 * 3 * 3 * 3 }, () => random() - 0.5);
  const gemm = Array.from({ length: 8 * 5 }, () => random() - 0.5);
  return encodeModel({
    ir_version: 8,
    producer_name: 'flotilla-test',
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'tiny_backbone',
      node: [
        { op_type: 'Conv', name: 'conv', input: ['input', 'conv_w'], output: ['conv_out'], attribute: [{ name: 'strides', type: ATTR.INTS, ints: [2, 2] }, { name: 'pads', type: ATTR.INTS, ints: [1, 1, 1, 1] }] },
        { op_type: 'Relu', name: 'relu', input: ['conv_out'], output: ['relu_out'] },
        { op_type: 'GlobalAveragePool', name: 'gap', input: ['relu_out'], output: ['pooled'] },
        { op_type: 'Flatten', name: 'flatten', input: ['pooled'], output: ['features'], attribute: [{ name: 'axis', type: ATTR.INT, i: 1 }] },
        { op_type: 'Gemm', name: 'fc', input: ['features', 'fc_w', 'fc_b'], output: ['logits'] },
        { op_type: 'Softmax', name: 'softmax', input: ['logits'], output: ['scores'], attribute: [{ name: 'axis', type: ATTR.INT, i: 1 }] },
      ],
      initializer: [floatTensor('conv_w', [8, 3, 3, 3], conv), floatTensor('fc_w', [8, 5], gemm), floatTensor('fc_b', [5], [0, 0, 0, 0, 0])],
      input: [{ name: 'input', type: tensorType(ELEM.FLOAT, ['batch', 3, size, size]) }],
      output: [{ name: 'scores', type: tensorType(ELEM.FLOAT, ['batch', 5]) }],
    },
  });
}

/** Colour of each synthetic class: what tells them apart. */
const CLASS_COLOURS: Record<string, [number, number, number]> = {
  crack: [200, 60, 60],
  spalling: [60, 200, 60],
  corrosion: [60, 60, 200],
};

/**
 * An imagefolder dataset of noisy solid-colour PNGs (`train/<class>/<class>-N.png`),
 * `perClass` per class, deterministic. `name(label, i)` lets a test choose file names.
 */
export async function writeColourDataset(
  root: string,
  perClass: number,
  opts: { size?: number; labels?: Record<string, [number, number, number]>; fileName?: (label: string, i: number) => string } = {},
): Promise<string[]> {
  const size = opts.size ?? 40;
  const labels = opts.labels ?? CLASS_COLOURS;
  const random = seededRandom(7);
  for (const [label, rgb] of Object.entries(labels)) {
    const dir = path.join(root, 'train', label);
    await mkdir(dir, { recursive: true });
    for (let i = 0; i < perClass; i += 1) {
      const px = Buffer.alloc(size * size * 3);
      for (let p = 0; p < size * size; p += 1) for (let c = 0; c < 3; c += 1) px[p * 3 + c] = Math.max(0, Math.min(255, Math.round(rgb[c]! + (random() - 0.5) * 120)));
      const file = path.join(dir, opts.fileName?.(label, i) ?? `${label}-${i}.png`);
      await writeFile(file, await sharp(px, { raw: { width: size, height: size, channels: 3 } }).png().toBuffer());
    }
  }
  return Object.keys(labels);
}
