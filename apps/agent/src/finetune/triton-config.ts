import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface ClassifierSignature {
  input: string;
  output: string;
  height: number;
  width: number;
}

/** Triton's config.pbtxt for the exported classifier, with labels.txt for Triton's classification extension. */
export function classifierConfigPbtxt(model: string, classes: number, sig: ClassifierSignature): string {
  return [
    `name: "${model}"`,
    'platform: "onnxruntime_onnx"',
    'max_batch_size: 0',
    'input [',
    `  { name: "${sig.input}" data_type: TYPE_FP32 dims: [ -1, ${sig.height}, ${sig.width}, 3 ] }`,
    ']',
    'output [',
    `  { name: "${sig.output}" data_type: TYPE_FP32 dims: [ -1, ${classes} ] label_filename: "labels.txt" }`,
    ']',
    '',
  ].join('\n');
}

/** `<repo>/<model>/config.pbtxt`, `labels.txt` and `1/model.onnx`: a Triton model repository holding the one version. */
export async function writeTritonModelDir(repo: string, model: string, bytes: Uint8Array, labels: string[], sig: ClassifierSignature): Promise<string> {
  const dir = path.join(repo, model);
  await mkdir(path.join(dir, '1'), { recursive: true });
  await writeFile(path.join(dir, '1', 'model.onnx'), bytes);
  await writeFile(path.join(dir, 'labels.txt'), `${labels.join('\n')}\n`);
  await writeFile(path.join(dir, 'config.pbtxt'), classifierConfigPbtxt(model, labels.length, sig));
  return dir;
}
