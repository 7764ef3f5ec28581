import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fixtureChecksums, fixtureModels, sha256Digest } from '../support/onnx-model.js';
import { FIXTURES } from './support.js';

describe('ONNX test models', () => {
  it('are committed exactly as the generator writes them, so they can be regenerated at will', async () => {
    for (const [file, bytes] of Object.entries(fixtureModels())) {
      const committed = await readFile(path.join(FIXTURES, file));
      expect(sha256Digest(committed)).toBe(sha256Digest(bytes));
    }
  });

  it('have their sha256 listed in SHA256SUMS', async () => {
    expect(await readFile(path.join(FIXTURES, 'SHA256SUMS'), 'utf8')).toBe(fixtureChecksums(fixtureModels()));
  });
});
