import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ModelSource } from './loaded-model.js';

/**
 * Reads a Triton-layout model repository, `<root>/<model>/<version>/model.onnx`,
 * into the model versions to serve. Directories without a model.onnx (Triton
 * keeps config.pbtxt and other backends' files there) are skipped; a
 * repository with no ONNX model at all is an error, since a server with
 * nothing to serve is a misconfiguration, not a state to run in.
 */
export async function readModelRepository(root: string): Promise<ModelSource[]> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch (err) {
    throw new Error(`model repository ${root} cannot be read: ${(err as Error).message}`);
  }
  const sources: ModelSource[] = [];
  for (const name of names.sort()) {
    const modelDir = path.join(root, name);
    if (!(await stat(modelDir)).isDirectory()) continue;
    for (const version of (await readdir(modelDir)).sort()) {
      const file = path.join(modelDir, version, 'model.onnx');
      const found = await stat(file).catch(() => null);
      if (found?.isFile()) sources.push({ name, version, path: file });
    }
  }
  if (sources.length === 0) throw new Error(`model repository ${root} holds no <model>/<version>/model.onnx`);
  return sources;
}

/** Triton's default policy serves the highest version; numeric parts compare as numbers ("10" > "9", "1.10.0" > "1.9.0"). */
export function latestVersion(versions: readonly string[]): string | undefined {
  return [...versions].sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).at(-1);
}
