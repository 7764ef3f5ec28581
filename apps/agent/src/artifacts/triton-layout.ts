import { link, lstat, mkdir, readFile, readlink, rename, rm, stat, symlink } from 'node:fs/promises';
import { join, relative, dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ModelRef } from '@flotilla/contracts';
import { writeFileAtomic } from './fs-atomic.js';

type Format = ModelRef['format'];

interface FormatLayout {
  /** File name Triton expects inside the version directory. */
  fileName: string;
  /** `platform` and `backend` for config.pbtxt; null where Triton has no backend for it. */
  platform: string | null;
  backend: string | null;
}

/**
 * Single-file formats only. `savedmodel` is a directory tree, which a
 * content-addressed blob cannot be without an archive format (out of scope:
 * ensure rejects it as ArtifactInvalid). `safetensors` and `other` are laid
 * out for the builtin server and trainers, without a Triton backend.
 */
const LAYOUTS: Partial<Record<Format, FormatLayout>> = {
  onnx: { fileName: 'model.onnx', platform: 'onnxruntime_onnx', backend: 'onnxruntime' },
  torchscript: { fileName: 'model.pt', platform: 'pytorch_libtorch', backend: 'pytorch' },
  tensorrt: { fileName: 'model.plan', platform: 'tensorrt_plan', backend: 'tensorrt' },
  safetensors: { fileName: 'model.safetensors', platform: null, backend: null },
  other: { fileName: 'model.bin', platform: null, backend: null },
};

export function layoutFor(format: Format): FormatLayout | null {
  return LAYOUTS[format] ?? null;
}

/** Triton's version directory; one repository per digest holds one version. */
export const MODEL_VERSION_DIR = '1';

/**
 * A minimal config.pbtxt: Triton fills in inputs and outputs from the model
 * for ONNX and TensorRT (auto-complete); `max_batch_size: 0` because nothing
 * is known about batching here.
 */
export function configPbtxt(name: string, layout: FormatLayout): string {
  const lines = [`name: "${name}"`];
  if (layout.platform) lines.push(`platform: "${layout.platform}"`);
  if (layout.backend) lines.push(`backend: "${layout.backend}"`);
  lines.push('max_batch_size: 0');
  return `${lines.join('\n')}\n`;
}

/**
 * Makes `<repositoryPath>/<name>/1/<file>` point at the blob without copying
 * it: a hard link (works inside a container that mounts only the cache), or a
 * relative symlink where hard links are impossible (another filesystem,
 * filesystems without them). Idempotent, and atomic through rename so a
 * running server never sees a half-made entry.
 */
export async function layOut(
  repositoryPath: string,
  name: string,
  layout: FormatLayout,
  blobPath: string,
): Promise<string> {
  const versionDir = join(repositoryPath, name, MODEL_VERSION_DIR);
  await mkdir(versionDir, { recursive: true });
  const modelPath = join(versionDir, layout.fileName);
  if (!(await pointsAt(modelPath, blobPath))) {
    const tmp = `${modelPath}.tmp-${randomBytes(4).toString('hex')}`;
    try {
      try {
        await link(blobPath, tmp);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EMLINK') throw err;
        await symlink(relative(dirname(tmp), blobPath), tmp);
      }
      await rename(tmp, modelPath);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }
  const configPath = join(repositoryPath, name, 'config.pbtxt');
  const config = configPbtxt(name, layout);
  const current = await readFile(configPath, 'utf8').catch(() => null);
  if (current !== config) await writeFileAtomic(configPath, config);
  return modelPath;
}

async function pointsAt(modelPath: string, blobPath: string): Promise<boolean> {
  try {
    const st = await lstat(modelPath);
    if (st.isSymbolicLink()) {
      const target = await readlink(modelPath);
      return join(dirname(modelPath), target) === blobPath;
    }
    const blob = await stat(blobPath);
    return st.ino === blob.ino && st.dev === blob.dev;
  } catch {
    return false;
  }
}
