import { mkdtemp, readFile, rm, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { capLogFile, openLogFile } from './log-file.js';

describe('workload log files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-log-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('leaves a log under the cap alone', async () => {
    const log = path.join(dir, 'a.log');
    await writeFile(log, 'x'.repeat(10));
    expect(await capLogFile(log, { maxBytes: 10, keep: 2 })).toBe(false);
    expect(await readdir(dir)).toEqual(['a.log']);
  });

  it('rotates a log over the cap into numbered files, keeping only `keep` of them', async () => {
    const log = path.join(dir, 'a.log');
    for (const round of ['first', 'second', 'third']) {
      await writeFile(log, `${round}\n`.repeat(10));
      expect(await capLogFile(log, { maxBytes: 10, keep: 2 })).toBe(true);
    }
    expect((await readdir(dir)).sort()).toEqual(['a.log', 'a.log.1', 'a.log.2']);
    expect(await readFile(log, 'utf8')).toBe('');
    expect(await readFile(`${log}.1`, 'utf8')).toContain('third');
    expect(await readFile(`${log}.2`, 'utf8')).toContain('second');
  });

  it('lets a writer holding the file keep appending after a rotation, from the start of the emptied file', async () => {
    const log = path.join(dir, 'a.log');
    const writer = await openLogFile(log, { maxBytes: 100, keep: 1 });
    try {
      await writer.write('y'.repeat(200));
      await capLogFile(log, { maxBytes: 100, keep: 1 });
      await writer.write('after rotation\n');
      expect(await readFile(log, 'utf8')).toBe('after rotation\n');
    } finally {
      await writer.close();
    }
  });
});
