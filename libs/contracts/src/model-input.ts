import { z } from 'zod';

/**
 * What an image backbone expects, declared on a Model version so a trainer
 * (and a client) can prepare pixels the way the network was trained:
 * `x = (pixel * scale - mean) / std` per RGB channel, resized to width x height,
 * laid out NCHW or NHWC. `embeddingOutput` names the tensor a linear probe
 * reads; without it the trainer picks the input of the final classifier layer
 * and says which one it took.
 */
export const ModelInputSchema = z
  .object({
    width: z.number().int().min(1).max(4096).describe('pixels the network takes (images are resized to cover it, centre-cropped)'),
    height: z.number().int().min(1).max(4096).describe('pixels the network takes'),
    layout: z.enum(['NCHW', 'NHWC']).default('NCHW').describe('tensor layout of the network input'),
    scale: z.number().positive().default(1 / 255).describe('pixels (0-255) are multiplied by this first'),
    mean: z.tuple([z.number(), z.number(), z.number()]).default([0, 0, 0]).describe('subtracted per RGB channel after scaling'),
    std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]).default([1, 1, 1]).describe('divides each RGB channel after the mean'),
    embeddingOutput: z.string().min(1).max(256).optional().describe('tensor the linear probe reads; default: the input of the final classifier layer'),
  })
  .strict()
  .describe('what an image backbone expects; the linear-probe trainer reads it');
export type ModelInput = z.infer<typeof ModelInputSchema>;
