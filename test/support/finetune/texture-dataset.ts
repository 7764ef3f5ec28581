import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { seededRandom } from '../../../apps/agent/src/finetune/softmax-head.js';

/**
 * Real labelled images from a Debian package: the texture photographs
 * (brick, grass, gravel; 512x512 grayscale) that python3-skimage ships.
 * Each photograph is cut into a 4x4 grid of tiles; patches for test/ come only
 * from four held-out tiles and patches for train/ from the other twelve, so no
 * held-out pixel is ever seen in training.
 */
export const SKIMAGE_DATA_DIR = '/usr/lib/python3/dist-packages/skimage/data';
export const TEXTURES = ['brick', 'grass', 'gravel'] as const;

export function textureSourcesAvailable(dir = SKIMAGE_DATA_DIR): boolean {
  return TEXTURES.every((t) => existsSync(path.join(dir, `${t}.png`)));
}

export interface TextureDatasetOptions {
  trainPerClass: number;
  testPerClass: number;
  /** Side of each square patch; cut inside one tile of a 4x4 grid over the photograph. */
  patch?: number;
  seed?: number;
  sourceDir?: string;
}

/** A tile of the 4x4 grid is held out when (row + column) % 4 == 1: four tiles spread over each photograph. */
const isTestTile = (row: number, col: number) => (row + col) % 4 === 1;

/** Writes `root/train/<texture>/*.png` and `root/test/<texture>/*.png`; returns the number of images. */
export async function writeTextureDataset(root: string, opts: TextureDatasetOptions): Promise<number> {
  const patch = opts.patch ?? 96;
  const random = seededRandom(opts.seed ?? 11);
  const sourceDir = opts.sourceDir ?? SKIMAGE_DATA_DIR;
  let written = 0;
  for (const texture of TEXTURES) {
    const file = path.join(sourceDir, `${texture}.png`);
    const { width = 512, height = 512 } = await sharp(file).metadata();
    const tileW = Math.floor(width / 4);
    const tileH = Math.floor(height / 4);
    if (tileW < patch || tileH < patch) throw new Error(`${file} is too small for ${patch}-pixel patches`);
    const tiles = Array.from({ length: 16 }, (_, i) => ({ row: Math.floor(i / 4), col: i % 4 }));
    for (const [name, count] of [['train', opts.trainPerClass], ['test', opts.testPerClass]] as const) {
      const mine = tiles.filter((t) => isTestTile(t.row, t.col) === (name === 'test'));
      const dir = path.join(root, name, texture);
      await mkdir(dir, { recursive: true });
      for (let i = 0; i < count; i += 1) {
        const tile = mine[i % mine.length]!;
        const left = tile.col * tileW + Math.floor(random() * (tileW - patch + 1));
        const top = tile.row * tileH + Math.floor(random() * (tileH - patch + 1));
        const png = await sharp(file).extract({ left, top, width: patch, height: patch }).png().toBuffer();
        await writeFile(path.join(dir, `${texture}-${String(i).padStart(3, '0')}.png`), png);
        written += 1;
      }
    }
  }
  return written;
}
