import { createHash } from 'node:crypto';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';

/**
 * Labelled image datasets as the linear-probe trainer reads them on the spoke.
 * Only file names and sizes feed the fingerprint; the contents never leave
 * this module except as decoded pixels for the trainer.
 */

export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp']);

export class DatasetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatasetError';
  }
}

export interface DatasetImage {
  /** Path relative to the dataset root, with "/" separators (what the fingerprint and the split hash). */
  relativePath: string;
  absolutePath: string;
  sizeBytes: number;
  label: number;
  /** A csv/jsonl feature row's values (then `absolutePath` is its index file). */
  features?: Float32Array;
  /** Where a csv/jsonl row is (`<file> line N`), for error messages. */
  source?: string;
}

export interface ImageFolderDataset {
  root: string;
  labels: string[];
  train: DatasetImage[];
  /** The `test/` directory's images, when the dataset has one. */
  test: DatasetImage[] | null;
  /** sha256 of the sorted "relative path, size" lines of every file read. */
  fingerprint: string;
  /** Set when the rows are feature vectors (csv/jsonl with featureColumns), not images. */
  featureColumns?: string[];
}

export interface DatasetFormatSpec {
  format: 'imagefolder' | 'csv' | 'jsonl';
  labelColumn?: string | undefined;
  imageColumn?: string | undefined;
  featureColumns?: string[] | undefined;
}

/** Any of the three layouts, from a resolved (checked) dataset directory. */
export async function readDataset(root: string, spec: DatasetFormatSpec): Promise<ImageFolderDataset> {
  if (spec.format === 'imagefolder') return readImageFolder(root);
  const { readTabularDataset } = await import('./tabular-dataset.js');
  return readTabularDataset(root, spec.format, spec);
}

/**
 * The one place a job's dataset path becomes a directory to read. It must be
 * absolute; the agent's allowed dataset roots (a source policy) are applied
 * here when configured, so every read of a dataset goes through this check.
 */
export type DatasetPathPolicy = (resolved: string) => void;

export async function resolveDatasetPath(datasetPath: string, policy?: DatasetPathPolicy): Promise<string> {
  if (!path.isAbsolute(datasetPath)) throw new DatasetError(`dataset path "${datasetPath}" must be absolute`);
  let resolved: string;
  try {
    resolved = await realpath(path.resolve(datasetPath));
  } catch (err) {
    throw new DatasetError(`dataset path "${datasetPath}" cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  policy?.(resolved);
  if (!(await stat(resolved)).isDirectory()) throw new DatasetError(`dataset path "${datasetPath}" is not a directory`);
  return resolved;
}

async function listDir(dir: string, what: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch (err) {
    throw new DatasetError(`${what} "${dir}" cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

async function isDirectory(p: string): Promise<boolean> {
  return (await stat(p).catch(() => null))?.isDirectory() ?? false;
}

async function readSplit(root: string, split: 'train' | 'test', labels: string[]): Promise<DatasetImage[]> {
  const images: DatasetImage[] = [];
  for (const [label, name] of labels.entries()) {
    const dir = path.join(root, split, name);
    if (!(await isDirectory(dir))) {
      if (split === 'test') continue;
      throw new DatasetError(`class "${name}" has no directory ${dir}`);
    }
    let count = 0;
    for (const file of await listDir(dir, 'class directory')) {
      if (file.startsWith('.') || !IMAGE_EXTENSIONS.has(path.extname(file).toLowerCase())) continue;
      const absolutePath = path.join(dir, file);
      const s = await stat(absolutePath);
      if (!s.isFile()) continue;
      images.push({ relativePath: `${split}/${name}/${file}`, absolutePath, sizeBytes: s.size, label });
      count += 1;
    }
    if (count === 0 && split === 'train') throw new DatasetError(`class "${name}" is empty: ${dir} holds no .jpg, .jpeg, .png or .webp image`);
  }
  return images;
}

/** `train/<label>/*`, optional `test/<label>/*`, optional `labels.txt` fixing the class order (else sorted names). */
export async function readImageFolder(root: string): Promise<ImageFolderDataset> {
  const trainDir = path.join(root, 'train');
  if (!(await isDirectory(trainDir))) throw new DatasetError(`imagefolder dataset ${root} has no train/ directory`);
  const dirs: string[] = [];
  for (const name of await listDir(trainDir, 'directory')) {
    if (!name.startsWith('.') && (await isDirectory(path.join(trainDir, name)))) dirs.push(name);
  }
  const fingerprintFiles: { rel: string; size: number }[] = [];
  let labels = dirs;
  const labelsFile = path.join(root, 'labels.txt');
  const labelsStat = await stat(labelsFile).catch(() => null);
  if (labelsStat?.isFile()) {
    const text = await readFile(labelsFile, 'utf8');
    labels = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
    const seen = new Set<string>();
    for (const l of labels) {
      if (seen.has(l)) throw new DatasetError(`${labelsFile} lists class "${l}" twice`);
      seen.add(l);
    }
    const extra = dirs.filter((d) => !seen.has(d));
    if (extra.length > 0) throw new DatasetError(`${trainDir} has class directories not in ${labelsFile}: ${extra.join(', ')}`);
    fingerprintFiles.push({ rel: 'labels.txt', size: labelsStat.size });
  }
  if (labels.length < 2) throw new DatasetError(`dataset ${root} has ${labels.length} class${labels.length === 1 ? '' : 'es'} under train/; a classifier needs at least two`);
  const train = await readSplit(root, 'train', labels);
  const test = (await isDirectory(path.join(root, 'test'))) ? await readSplit(root, 'test', labels) : null;
  for (const img of [...train, ...(test ?? [])]) fingerprintFiles.push({ rel: img.relativePath, size: img.sizeBytes });
  return { root, labels, train, test, fingerprint: datasetFingerprint(fingerprintFiles) };
}

/** sha256 of the sorted `relative-path NUL size LF` lines: names and sizes only, never the contents. */
export function datasetFingerprint(files: { rel: string; size: number }[]): string {
  const h = createHash('sha256');
  for (const f of [...files].sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0))) h.update(`${f.rel}\0${f.size}\n`);
  return `sha256:${h.digest('hex')}`;
}

/** A number in [0, 1) fixed by the file's relative path and a salt, so a split never moves an image when others are added. */
export function stableFraction(relativePath: string, salt: string): number {
  return createHash('sha256').update(`${salt}\0${relativePath}`).digest().readUInt32BE(0) / 2 ** 32;
}

export interface DatasetSplits {
  train: DatasetImage[];
  validation: DatasetImage[];
  holdout: DatasetImage[];
  holdoutSource: 'test-directory' | 'holdout-fraction';
}

/**
 * Held-out set: `test/` when present, else each image whose stable fraction is
 * below `holdoutFraction` (deterministic per file, so per class). A
 * validation set for early stopping is drawn the same way from the rest.
 */
export function splitDataset(ds: ImageFolderDataset, holdoutFraction: number, validationFraction = 0.15): DatasetSplits {
  const holdout = ds.test ?? ds.train.filter((img) => stableFraction(img.relativePath, 'holdout') < holdoutFraction);
  const held = new Set(holdout);
  const rest = ds.train.filter((img) => !held.has(img));
  const validation = rest.filter((img) => stableFraction(img.relativePath, 'validation') < validationFraction);
  const inValidation = new Set(validation);
  const train = rest.filter((img) => !inValidation.has(img));
  for (const [label, name] of ds.labels.entries()) {
    if (!train.some((img) => img.label === label)) throw new DatasetError(`class "${name}" has no training image left after the held-out and validation splits; add images`);
  }
  return { train, validation, holdout, holdoutSource: ds.test ? 'test-directory' : 'holdout-fraction' };
}

export function countsByClass(images: DatasetImage[], labels: string[]): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(labels.map((l) => [l, 0]));
  for (const img of images) counts[labels[img.label]!] = (counts[labels[img.label]!] ?? 0) + 1;
  return counts;
}
