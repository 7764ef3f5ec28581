import { createHash } from 'node:crypto';
import { readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { datasetFingerprint, DatasetError, IMAGE_EXTENSIONS, type DatasetImage, type ImageFolderDataset } from './dataset.js';

/**
 * csv and jsonl datasets: an index file per split (`train.csv` or
 * `train.jsonl`, optional `test.csv` / `test.jsonl` as the held-out set, as
 * `test/` is for imagefolder), optional `labels.txt` fixing the class order.
 * Each row is either an image (a path relative to the dataset directory in
 * `imageColumn`) or, when `featureColumns` is given, a numeric feature
 * vector; its class is in `labelColumn`. Errors name the file and the line.
 */

export interface TabularColumns {
  labelColumn?: string | undefined;
  imageColumn?: string | undefined;
  featureColumns?: string[] | undefined;
}

export const DEFAULT_LABEL_COLUMN = 'label';
export const DEFAULT_IMAGE_COLUMN = 'image';
/** Index files larger than this are refused (they are read whole). */
export const MAX_INDEX_BYTES = 256 * 2 ** 20;
export const MAX_ROWS = 1_000_000;

export type TabularFormat = 'csv' | 'jsonl';

/** One row as a column -> text/number map, with its 1-based line number. */
interface Row {
  line: number;
  values: Map<string, unknown>;
  /** The row's raw text: the split key of a feature row (never sent anywhere). */
  raw: string;
}

/** Splits one CSV line (RFC 4180 quoting, no line breaks inside quotes). */
export function splitCsvLine(line: string): string[] | null {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let value = '';
      i += 1;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) return null;
        value += line.slice(i, q);
        if (line[q + 1] === '"') {
          value += '"';
          i = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      out.push(value);
      if (i === line.length) return out;
      if (line[i] !== ',') return null;
      i += 1;
    } else {
      const c = line.indexOf(',', i);
      const value = c < 0 ? line.slice(i) : line.slice(i, c);
      if (value.includes('"')) return null;
      out.push(value);
      if (c < 0) return out;
      i = c + 1;
    }
  }
}

async function readIndex(file: string): Promise<{ text: string; size: number } | null> {
  const s = await stat(file).catch(() => null);
  if (!s) return null;
  if (!s.isFile()) throw new DatasetError(`${file} is not a file`);
  if (s.size > MAX_INDEX_BYTES) throw new DatasetError(`${file} is ${s.size} bytes, above the ${MAX_INDEX_BYTES}-byte limit of an index file`);
  try {
    return { text: await readFile(file, 'utf8'), size: s.size };
  } catch (err) {
    throw new DatasetError(`${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function lines(text: string): { line: number; text: string }[] {
  return text
    .split('\n')
    .map((t, i) => ({ line: i + 1, text: t.endsWith('\r') ? t.slice(0, -1) : t }))
    .filter((l) => l.text.trim() !== '');
}

function parseCsv(file: string, text: string): Row[] {
  const all = lines(text);
  const header = all.shift();
  if (!header) throw new DatasetError(`${file} is empty: it needs a header line and rows`);
  const names = splitCsvLine(header.text.replace(/^\uFEFF/, ''));
  if (!names) throw new DatasetError(`${file} line ${header.line}: malformed header (unbalanced quotes)`);
  if (new Set(names).size !== names.length) throw new DatasetError(`${file} line ${header.line}: the header names a column twice`);
  if (all.length > MAX_ROWS) throw new DatasetError(`${file} has more than ${MAX_ROWS} rows`);
  return all.map(({ line, text: t }) => {
    const cells = splitCsvLine(t);
    if (!cells) throw new DatasetError(`${file} line ${line}: malformed row (unbalanced quotes)`);
    if (cells.length !== names.length) throw new DatasetError(`${file} line ${line}: malformed row: ${cells.length} fields, the header has ${names.length}`);
    return { line, raw: t, values: new Map(names.map((n, i) => [n, cells[i]!])) };
  });
}

function parseJsonl(file: string, text: string): Row[] {
  const all = lines(text);
  if (all.length > MAX_ROWS) throw new DatasetError(`${file} has more than ${MAX_ROWS} rows`);
  return all.map(({ line, text: t }) => {
    let v: unknown;
    try {
      v = JSON.parse(t);
    } catch {
      throw new DatasetError(`${file} line ${line}: malformed row: not JSON`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new DatasetError(`${file} line ${line}: malformed row: not a JSON object`);
    return { line, raw: t, values: new Map(Object.entries(v)) };
  });
}

function cellText(row: Row, column: string, file: string): string {
  const v = row.values.get(column);
  if (v === undefined) throw new DatasetError(`${file} line ${row.line}: malformed row: no "${column}" column`);
  if (typeof v !== 'string' && typeof v !== 'number') throw new DatasetError(`${file} line ${row.line}: malformed row: "${column}" must be a string or a number`);
  const text = String(v).trim();
  if (text === '') throw new DatasetError(`${file} line ${row.line}: malformed row: "${column}" is empty`);
  return text;
}

/**
 * An image path from a row, checked to stay inside the dataset directory:
 * relative, no `..`, no symlink leading out, an image extension, a file.
 */
async function imageOf(rootReal: string, rel: string, where: string): Promise<{ rel: string; abs: string; size: number }> {
  if (rel.includes('\0') || path.isAbsolute(rel) || /^[A-Za-z]:[\\/]/.test(rel) || rel.startsWith('\\')) throw new DatasetError(`${where}: image path "${rel}" must be relative to the dataset directory`);
  const parts = rel.split(/[\\/]/);
  if (parts.includes('..')) throw new DatasetError(`${where}: image path "${rel}" must not contain ".."`);
  const normal = parts.filter((p) => p !== '' && p !== '.').join('/');
  if (!IMAGE_EXTENSIONS.has(path.extname(normal).toLowerCase())) throw new DatasetError(`${where}: "${rel}" is not a .jpg, .jpeg, .png or .webp image`);
  const abs = path.join(rootReal, normal);
  let real: string;
  try {
    real = await realpath(abs);
  } catch (err) {
    throw new DatasetError(`${where}: image ${abs} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (real !== rootReal && !real.startsWith(rootReal + path.sep)) throw new DatasetError(`${where}: image ${abs} leads outside the dataset directory (symbolic link)`);
  const s = await stat(real);
  if (!s.isFile()) throw new DatasetError(`${where}: image ${abs} is not a file`);
  return { rel: normal, abs: real, size: s.size };
}

function featureVector(row: Row, columns: string[], file: string): Float32Array {
  const out = new Float32Array(columns.length);
  for (const [i, c] of columns.entries()) {
    const v = row.values.get(c);
    const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    if (v === undefined) throw new DatasetError(`${file} line ${row.line}: malformed row: no "${c}" column`);
    if (!Number.isFinite(n)) throw new DatasetError(`${file} line ${row.line}: malformed row: feature "${c}" is not a finite number`);
    out[i] = n;
  }
  return out;
}

/** A csv or jsonl dataset read into the same shape as an imagefolder one (feature rows carry `features`). */
export async function readTabularDataset(root: string, format: TabularFormat, columns: TabularColumns = {}): Promise<ImageFolderDataset> {
  const rootReal = await realpath(root);
  const labelColumn = columns.labelColumn ?? DEFAULT_LABEL_COLUMN;
  const imageColumn = columns.imageColumn ?? DEFAULT_IMAGE_COLUMN;
  const featureColumns = columns.featureColumns;
  const parse = format === 'csv' ? parseCsv : parseJsonl;
  const fingerprintFiles: { rel: string; size: number }[] = [];
  const splits: Record<'train' | 'test', { file: string; rows: Row[] } | null> = { train: null, test: null };
  for (const split of ['train', 'test'] as const) {
    const file = path.join(rootReal, `${split}.${format}`);
    const index = await readIndex(file);
    if (!index) continue;
    fingerprintFiles.push({ rel: `${split}.${format}`, size: index.size });
    splits[split] = { file, rows: parse(file, index.text) };
  }
  if (!splits.train) throw new DatasetError(`${format} dataset ${rootReal} has no train.${format}`);
  if (splits.train.rows.length === 0) throw new DatasetError(`${splits.train.file} has no rows`);

  let labels: string[] | null = null;
  const labelsFile = path.join(rootReal, 'labels.txt');
  const labelsIndex = await readIndex(labelsFile);
  if (labelsIndex) {
    labels = labelsIndex.text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
    if (new Set(labels).size !== labels.length) throw new DatasetError(`${labelsFile} lists a class twice`);
    fingerprintFiles.push({ rel: 'labels.txt', size: labelsIndex.size });
  }
  const rowLabels = (rows: Row[], file: string) => rows.map((r) => cellText(r, labelColumn, file));
  const trainLabels = rowLabels(splits.train.rows, splits.train.file);
  if (labels === null) labels = [...new Set(trainLabels)].sort();
  const index = new Map(labels.map((l, i) => [l, i]));

  const referenced = new Map<string, number>();
  const items = async (split: 'train' | 'test'): Promise<DatasetImage[] | null> => {
    const s = splits[split];
    if (!s) return null;
    const names = split === 'train' ? trainLabels : rowLabels(s.rows, s.file);
    const out: DatasetImage[] = [];
    for (const [i, row] of s.rows.entries()) {
      const where = `${s.file} line ${row.line}`;
      const label = index.get(names[i]!);
      if (label === undefined) throw new DatasetError(`${where}: class "${names[i]}" is not in ${labelsFile}`);
      if (featureColumns) {
        const key = `row:${createHash('sha256').update(row.raw).digest('hex')}`;
        out.push({ relativePath: key, absolutePath: s.file, sizeBytes: 0, label, features: featureVector(row, featureColumns, s.file), source: where });
      } else {
        const img = await imageOf(rootReal, cellText(row, imageColumn, s.file), where);
        referenced.set(img.rel, img.size);
        out.push({ relativePath: img.rel, absolutePath: img.abs, sizeBytes: img.size, label, source: where });
      }
    }
    return out;
  };
  const train = (await items('train'))!;
  const test = await items('test');
  if (labels.length < 2) throw new DatasetError(`dataset ${rootReal} has ${labels.length} class${labels.length === 1 ? '' : 'es'} in ${splits.train.file}; a classifier needs at least two`);
  for (const [i, name] of labels.entries()) {
    if (!train.some((t) => t.label === i)) throw new DatasetError(`class "${name}" is empty: no row of ${splits.train.file} has it`);
  }
  for (const [rel, size] of referenced) fingerprintFiles.push({ rel, size });
  return { root: rootReal, labels, train, test, fingerprint: datasetFingerprint(fingerprintFiles), ...(featureColumns ? { featureColumns: [...featureColumns] } : {}) };
}
