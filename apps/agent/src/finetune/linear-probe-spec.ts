import { ModelInputSchema } from '@flotilla/contracts';
import { z } from 'zod';
import { DEFAULT_HEAD_HYPERPARAMETERS, type HeadHyperparameters } from './softmax-head.js';

/** What the agent hands the linear-probe child process (a JSON file named on its command line). */
export const LinearProbeSpecSchema = z
  .object({
    job: z.string().min(1).max(253),
    datasetPath: z.string().min(1).max(4096),
    datasetFormat: z.enum(['imagefolder', 'csv', 'jsonl']),
    /** csv/jsonl columns (defaults: label, image). */
    datasetColumns: z
      .object({ labelColumn: z.string().optional(), imageColumn: z.string().optional(), featureColumns: z.array(z.string()).optional() })
      .strict()
      .optional(),
    baseModelPath: z.string().min(1).max(4096),
    input: ModelInputSchema,
    hyperparameters: z.record(z.string(), z.union([z.number(), z.string(), z.boolean()])).default({}),
    holdoutFraction: z.number().gt(0).lt(1),
    outputDir: z.string().min(1).max(4096),
    /** The model name the output is laid out under for Triton. */
    outputModel: z.string().min(1).max(63),
    /** The ONNX file the spoke serves for the output model now, to compare on the same held-out split. */
    servedModelPath: z.string().min(1).max(4096).optional(),
    threads: z.number().int().min(1).max(256).default(2),
  })
  .strict();
export type LinearProbeSpec = z.infer<typeof LinearProbeSpecSchema>;

const HYPERPARAMETERS = z
  .object({
    epochs: z.number().int().min(1).max(10000).default(DEFAULT_HEAD_HYPERPARAMETERS.epochs),
    learningRate: z.number().positive().max(10).default(DEFAULT_HEAD_HYPERPARAMETERS.learningRate),
    l2: z.number().min(0).max(10).default(DEFAULT_HEAD_HYPERPARAMETERS.l2),
    batchSize: z.number().int().min(1).max(4096).default(DEFAULT_HEAD_HYPERPARAMETERS.batchSize),
    patience: z.number().int().min(1).max(10000).default(DEFAULT_HEAD_HYPERPARAMETERS.patience),
    seed: z.number().int().min(0).max(2 ** 31 - 1).default(DEFAULT_HEAD_HYPERPARAMETERS.seed),
    validationFraction: z.number().min(0).lt(1).default(0.15),
    embedBatchSize: z.number().int().min(1).max(512).default(16),
  })
  .strict();
export type LinearProbeHyperparameters = HeadHyperparameters & { validationFraction: number; embedBatchSize: number };

/** Hyperparameters with defaults; an unknown or out-of-range one is an error naming it. */
export function linearProbeHyperparameters(raw: Record<string, unknown>): LinearProbeHyperparameters {
  const parsed = HYPERPARAMETERS.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = issue.path.join('.') || (issue as { keys?: string[] }).keys?.join(', ') || '';
    throw new Error(`trainer.hyperparameters${key ? `.${key}` : ''}: ${issue.message}`);
  }
  return parsed.data;
}
