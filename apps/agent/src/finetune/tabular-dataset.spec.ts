import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { datasetFingerprint, readDataset, splitDataset } from './dataset.js';
import { splitCsvLine } from './tabular-dataset.js';

describe('csv and jsonl datasets', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-tabular-'));
    for (const f of ['a/1.png', 'a/2.png', 'b/1.jpg', 'b/2.jpg']) {
      await mkdir(path.dirname(path.join(dir, f)), { recursive: true });
      await writeFile(path.join(dir, f), `bytes of ${f}`);
    }
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('splits csv lines with RFC 4180 quoting and refuses unbalanced quotes', () => {
    expect(splitCsvLine('a,"b,c","d ""e"""')).toEqual(['a', 'b,c', 'd "e"']);
    expect(splitCsvLine('a,"b')).toBeNull();
    expect(splitCsvLine('a,b"c')).toBeNull();
  });

  it('reads image rows of a csv index; fingerprints the index and the referenced files by name and size only', async () => {
    const index = 'image,label\na/1.png,cat\n"a/2.png",cat\nb/1.jpg,dog\n./b/2.jpg,dog\n';
    await writeFile(path.join(dir, 'train.csv'), index);
    const ds = await readDataset(dir, { format: 'csv' });
    expect(ds.labels).toEqual(['cat', 'dog']);
    expect(ds.train.map((i) => [i.relativePath, i.label, i.source?.replace(dir, '')])).toEqual([
      ['a/1.png', 0, '/train.csv line 2'],
      ['a/2.png', 0, '/train.csv line 3'],
      ['b/1.jpg', 1, '/train.csv line 4'],
      ['b/2.jpg', 1, '/train.csv line 5'],
    ]);
    expect(ds.test).toBeNull();
    const size = (f: string) => `bytes of ${f}`.length;
    expect(ds.fingerprint).toBe(datasetFingerprint([{ rel: 'train.csv', size: index.length }, ...['a/1.png', 'a/2.png', 'b/1.jpg', 'b/2.jpg'].map((rel) => ({ rel, size: size(rel) }))]));
    // The image split key is the image's path, as for imagefolder: adding rows never moves old ones.
    const reordered = 'image,label\nb/1.jpg,dog\na/1.png,cat\n"a/2.png",cat\n./b/2.jpg,dog\n';
    await writeFile(path.join(dir, 'train.csv'), reordered);
    const again = await readDataset(dir, { format: 'csv' });
    expect(again.train.map((i) => i.relativePath).sort()).toEqual(ds.train.map((i) => i.relativePath).sort());
  });

  it('reads jsonl rows with other column names, numeric feature rows, and test.jsonl as the held-out set', async () => {
    await writeFile(path.join(dir, 'train.jsonl'), '{"file":"a/1.png","class":"cat"}\n{"file":"b/1.jpg","class":3}\n');
    await writeFile(path.join(dir, 'test.jsonl'), '{"file":"a/2.png","class":"cat"}\n');
    const ds = await readDataset(dir, { format: 'jsonl', imageColumn: 'file', labelColumn: 'class' });
    expect(ds.labels).toEqual(['3', 'cat']);
    expect(ds.test!.map((t) => t.relativePath)).toEqual(['a/2.png']);
    expect(splitDataset(ds, 0.5, 0).holdoutSource).toBe('test-directory');
    const rows = 'x,y,label\n1,2,p\n3,4.5,q\n-1,0,p\n';
    await writeFile(path.join(dir, 'train.csv'), rows);
    const features = await readDataset(dir, { format: 'csv', featureColumns: ['x', 'y'] });
    expect(features.featureColumns).toEqual(['x', 'y']);
    expect(features.train.map((t) => [...t.features!])).toEqual([[1, 2], [3, 4.5], [-1, 0]]);
    expect(features.fingerprint).toBe(datasetFingerprint([{ rel: 'train.csv', size: rows.length }]));
  });

  it('names the file and line of a malformed row, a path that escapes, a missing image, and refuses one class or an empty class', async () => {
    const csv = (text: string) => writeFile(path.join(dir, 'train.csv'), text);
    const read = () => readDataset(dir, { format: 'csv' });
    await csv('image,label\na/1.png,cat\nb/1.jpg\n');
    await expect(read()).rejects.toThrow(/train\.csv line 3: malformed row: 1 fields, the header has 2/);
    await csv('image,label\n../outside.png,cat\n');
    await expect(read()).rejects.toThrow(/train\.csv line 2: image path "\.\.\/outside\.png" must not contain "\.\."/);
    await csv('image,label\n/etc/passwd.png,cat\n');
    await expect(read()).rejects.toThrow(/line 2: image path "\/etc\/passwd\.png" must be relative/);
    const outside = await mkdtemp(path.join(tmpdir(), 'flotilla-outside-'));
    await writeFile(path.join(outside, 'x.png'), 'x');
    await symlink(path.join(outside, 'x.png'), path.join(dir, 'link.png'));
    await csv('image,label\na/1.png,cat\nlink.png,dog\n');
    await expect(read()).rejects.toThrow(/line 3: image .*link\.png leads outside the dataset directory/);
    await rm(outside, { recursive: true });
    await csv('image,label\na/9.png,cat\n');
    await expect(read()).rejects.toThrow(/train\.csv line 2: image .*a\/9\.png cannot be read: ENOENT/);
    await csv('image,label\na/1.png,cat\na/2.png,cat\n');
    await expect(read()).rejects.toThrow(/has 1 class in .*train\.csv; a classifier needs at least two/);
    await writeFile(path.join(dir, 'labels.txt'), 'cat\ndog\nbird\n');
    await csv('image,label\na/1.png,cat\nb/1.jpg,dog\n');
    await expect(read()).rejects.toThrow(/class "bird" is empty: no row of .*train\.csv has it/);
    await writeFile(path.join(dir, 'train.jsonl'), '{"image":"a/1.png","label":"cat"}\nnot json\n');
    await expect(readDataset(dir, { format: 'jsonl' })).rejects.toThrow(/train\.jsonl line 2: malformed row: not JSON/);
    await writeFile(path.join(dir, 'train.csv'), 'x,label\n1,cat\nabc,dog\n');
    await expect(readDataset(dir, { format: 'csv', featureColumns: ['x'] })).rejects.toThrow(/train\.csv line 3: malformed row: feature "x" is not a finite number/);
  });
});
