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
    width: z.number().int().min(1).max(4096),
    height: z.number().int().min(1).max(4096),
    layout: z.enum(['NCHW', 'NHWC']).default('NCHW'),
    scale: z.number().positive().default(1 / 255),
    mean: z.tuple([z.number(), z.number(), z.number()]).default([0, 0, 0]),
    std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]).default([1, 1, 1]),
    embeddingOutput: z.string().min(1).max(256).optional(),
  })
  .strict();
export type ModelInput = z.infer<typeof ModelInputSchema>;
