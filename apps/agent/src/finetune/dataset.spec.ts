import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { datasetFingerprint, readImageFolder, resolveDatasetPath, splitDataset, stableFraction } from './dataset.js';
import { linearProbeHyperparameters } from './linear-probe-spec.js';

async function imageFolder(root: string, classes: Record<string, string[]>, extra: Record<string, string> = {}): Promise<void> {
  for (const [label, files] of Object.entries(classes)) {
    await mkdir(path.join(root, 'train', label), { recursive: true });
    for (const f of files) await writeFile(path.join(root, 'train', label, f), `bytes of ${f}`);
  }
  for (const [rel, text] of Object.entries(extra)) {
    await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    await writeFile(path.join(root, rel), text);
  }
}

describe('imagefolder datasets', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-dataset-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads classes in sorted order, or in labels.txt order, and fingerprints names and sizes only', async () => {
    await imageFolder(dir, { b: ['1.png', '2.jpg'], a: ['x.webp', 'notes.txt'] });
    const ds = await readImageFolder(dir);
    expect(ds.labels).toEqual(['a', 'b']);
    expect(ds.train.map((i) => i.relativePath)).toEqual(['train/a/x.webp', 'train/b/1.png', 'train/b/2.jpg']);
    expect(ds.fingerprint).toBe(datasetFingerprint(ds.train.map((i) => ({ rel: i.relativePath, size: i.sizeBytes }))));
    // Same names and sizes, other contents: same fingerprint (contents are never read for it).
    await writeFile(path.join(dir, 'train', 'a', 'x.webp'), 'BYTES OF x.webp');
    expect((await readImageFolder(dir)).fingerprint).toBe(ds.fingerprint);
    await writeFile(path.join(dir, 'labels.txt'), 'b\na\n');
    const ordered = await readImageFolder(dir);
    expect(ordered.labels).toEqual(['b', 'a']);
    expect(ordered.fingerprint).not.toBe(ds.fingerprint);
  });

  it('names the class for an empty class, refuses one class, and names stray directories not in labels.txt', async () => {
    await imageFolder(dir, { a: ['1.png'] });
    await mkdir(path.join(dir, 'train', 'delamination'));
    await expect(readImageFolder(dir)).rejects.toThrow(/class "delamination" is empty/);
    const one = path.join(dir, 'one');
    await imageFolder(one, { crack: ['1.png'] });
    await expect(readImageFolder(one)).rejects.toThrow(/1 class under train\/; a classifier needs at least two/);
    const stray = path.join(dir, 'stray');
    await imageFolder(stray, { a: ['1.png'], b: ['1.png'], c: ['1.png'] }, { 'labels.txt': 'a\nb\n' });
    await expect(readImageFolder(stray)).rejects.toThrow(/not in .*labels\.txt: c/);
  });

  it('holds out test/ when present, else a per-file stable fraction that adding images never changes', async () => {
    const files = Array.from({ length: 40 }, (_, i) => `${i}.png`);
    await imageFolder(dir, { a: files, b: files });
    const before = splitDataset(await readImageFolder(dir), 0.25);
    expect(before.holdoutSource).toBe('holdout-fraction');
    expect(before.holdout.length).toBeGreaterThan(5);
    await imageFolder(dir, { a: Array.from({ length: 20 }, (_, i) => `new-${i}.png`) });
    const after = splitDataset(await readImageFolder(dir), 0.25);
    const held = new Set(after.holdout.map((i) => i.relativePath));
    for (const img of before.holdout) expect(held.has(img.relativePath)).toBe(true);
    for (const img of after.holdout) expect(stableFraction(img.relativePath, 'holdout')).toBeLessThan(0.25);

    await imageFolder(dir, {}, { 'test/a/t.png': 't', 'test/b/t.png': 't' });
    const withTest = splitDataset(await readImageFolder(dir), 0.25);
    expect(withTest.holdoutSource).toBe('test-directory');
    expect(withTest.holdout.map((i) => i.relativePath)).toEqual(['test/a/t.png', 'test/b/t.png']);
  });

  it('resolves only absolute, existing directories', async () => {
    await expect(resolveDatasetPath('relative/path')).rejects.toThrow(/must be absolute/);
    await expect(resolveDatasetPath(path.join(dir, 'missing'))).rejects.toThrow(/cannot be read: ENOENT/);
    await expect(resolveDatasetPath(dir, () => { throw new Error('outside the allowed dataset roots'); })).rejects.toThrow(/allowed dataset roots/);
  });

  it('rejects unknown hyperparameters by name', () => {
    expect(() => linearProbeHyperparameters({ epochz: 3 })).toThrow(/trainer\.hyperparameters.*epochz/);
    expect(() => linearProbeHyperparameters({ learningRate: -1 })).toThrow(/trainer\.hyperparameters\.learningRate/);
    expect(linearProbeHyperparameters({ epochs: 5 }).epochs).toBe(5);
  });
});
