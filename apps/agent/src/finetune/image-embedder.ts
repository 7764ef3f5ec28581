import type { ModelInput } from '@flotilla/contracts';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { DatasetError, type DatasetImage } from './dataset.js';

/**
 * Decodes one image with sharp (libvips): auto-rotated by its EXIF
 * orientation, converted to sRGB without alpha, resized to cover
 * width x height and centre-cropped. Returns HWC RGB pixels 0..255 as
 * float32, the exported graph's input format.
 */
export async function decodeImage(file: string, input: Pick<ModelInput, 'width' | 'height'>): Promise<Float32Array> {
  let data: Buffer;
  let channels: number;
  try {
    const out = await sharp(file, { failOn: 'error' })
      .rotate()
      .toColourspace('srgb')
      .removeAlpha()
      .resize(input.width, input.height, { fit: 'cover', position: 'centre' })
      .raw()
      .toBuffer({ resolveWithObject: true });
    data = out.data;
    channels = out.info.channels;
  } catch (err) {
    throw new DatasetError(`image ${file} cannot be decoded: ${(err as Error).message}`);
  }
  const pixels = input.width * input.height;
  const rgb = new Float32Array(pixels * 3);
  for (let i = 0; i < pixels; i += 1) {
    for (let c = 0; c < 3; c += 1) rgb[i * 3 + c] = data[i * channels + (channels >= 3 ? c : 0)]!;
  }
  return rgb;
}

export async function decodeBatch(images: DatasetImage[], input: Pick<ModelInput, 'width' | 'height'>): Promise<Float32Array> {
  const size = input.width * input.height * 3;
  const batch = new Float32Array(images.length * size);
  for (const [i, img] of images.entries()) batch.set(await decodeImage(img.absolutePath, input), i * size);
  return batch;
}

/** Runs an ONNX graph whose only input is `image` [batch, H, W, 3] and returns its only output. */
export class ImageGraphRunner {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly input: Pick<ModelInput, 'width' | 'height'>,
  ) {}

  static async load(model: Uint8Array, input: Pick<ModelInput, 'width' | 'height'>, threads: number): Promise<ImageGraphRunner> {
    const session = await ort.InferenceSession.create(model, { executionProviders: ['cpu'], intraOpNumThreads: threads, graphOptimizationLevel: 'all' });
    if (session.inputNames.length !== 1 || session.outputNames.length !== 1) {
      throw new Error(`expected a graph with one input and one output, got ${session.inputNames.join(', ')} -> ${session.outputNames.join(', ')}`);
    }
    return new ImageGraphRunner(session, input);
  }

  get inputName(): string {
    return this.session.inputNames[0]!;
  }

  /** Output rows [n, width] for n decoded images. */
  async run(pixels: Float32Array, n: number): Promise<{ data: Float32Array; width: number }> {
    const feeds = { [this.inputName]: new ort.Tensor('float32', pixels, [n, this.input.height, this.input.width, 3]) };
    const result = await this.session.run(feeds);
    const out = result[this.session.outputNames[0]!]!;
    const data = out.data as Float32Array;
    return { data: Float32Array.from(data), width: n === 0 ? 0 : data.length / n };
  }

  /** Decodes and runs images in batches; `onBatch` sees how many are done. */
  async runImages(images: DatasetImage[], batchSize: number, onBatch?: (done: number) => void): Promise<{ data: Float32Array; width: number }> {
    const parts: Float32Array[] = [];
    let width = 0;
    for (let start = 0; start < images.length; start += batchSize) {
      const chunk = images.slice(start, start + batchSize);
      const out = await this.run(await decodeBatch(chunk, this.input), chunk.length);
      width = out.width;
      parts.push(out.data);
      onBatch?.(Math.min(start + batchSize, images.length));
    }
    const data = new Float32Array(images.length * width);
    let offset = 0;
    for (const p of parts) {
      data.set(p, offset);
      offset += p.length;
    }
    return { data, width };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
