import { z } from 'zod';

/**
 * The trainer contract (docs/fine-tuning.md), shared by the builtin
 * linear-probe and by command and image trainers: progress and metric lines
 * on stdout, `model.onnx`, `labels.txt` and `metrics.json` in the output
 * directory, a `failure` file and a non-zero exit on failure.
 */

export const TRAINER_LINE_PREFIX = 'FLOTILLA ';
/** Longer stdout lines are not contract lines (bounded parsing of untrusted output). */
export const MAX_TRAINER_LINE = 4096;

export const TRAINER_PHASES = ['Preparing', 'Training', 'Evaluating'] as const;

export const TrainerEventSchema = z.discriminatedUnion('event', [
  z
    .object({
      event: z.literal('progress'),
      progress: z.number().min(0).max(1),
      phase: z.enum(TRAINER_PHASES).optional(),
      message: z.string().max(512).optional(),
    })
    .strict(),
  z
    .object({
      event: z.literal('metric'),
      name: z.string().min(1).max(64).regex(/^[A-Za-z][A-Za-z0-9_.-]*$/),
      value: z.number(),
      step: z.number().int().min(0).optional(),
    })
    .strict(),
]);
export type TrainerEvent = z.infer<typeof TrainerEventSchema>;

export function formatTrainerEvent(e: TrainerEvent): string {
  return `${TRAINER_LINE_PREFIX}${JSON.stringify(e)}\n`;
}

/** A contract line's event, or null for any other output (logs pass through; malformed lines are not events). */
export function parseTrainerLine(line: string): TrainerEvent | null {
  if (!line.startsWith(TRAINER_LINE_PREFIX) || line.length > MAX_TRAINER_LINE) return null;
  try {
    const parsed = TrainerEventSchema.safeParse(JSON.parse(line.slice(TRAINER_LINE_PREFIX.length)));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** The metrics every trainer writes under `metrics` in metrics.json; the evaluation gate reads one of them. */
export const TrainerMetricsFileSchema = z
  .object({
    metrics: z.object({ accuracy: z.number().min(0).max(1), f1: z.number().min(0).max(1).optional(), loss: z.number().min(0).optional() }).passthrough(),
    labels: z.array(z.string().min(1).max(256)).min(2).max(10000).optional(),
  })
  .passthrough();
export type TrainerMetricsFile = z.infer<typeof TrainerMetricsFileSchema>;

export const OUTPUT_FILES = { model: 'model.onnx', labels: 'labels.txt', metrics: 'metrics.json', failure: 'failure' } as const;
