import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { LinearProbeSpec } from './linear-probe-spec.js';
import type { Trainer, TrainerRunContext, TrainerRunResult } from './trainer.js';
import { defaultLinearProbeEntry, TrainerProcess } from './trainer-process.js';

/** The builtin linear-probe, run as a supervised child process of the agent (never in the agent itself). */
export class BuiltinTrainer implements Trainer {
  readonly kind = 'builtin' as const;
  readonly trusted = true;

  constructor(private readonly opts: { nodePath: string; entry?: string | undefined; threads: number }) {}

  async run(ctx: TrainerRunContext): Promise<TrainerRunResult> {
    const { job } = ctx;
    if (!('builtin' in job.trainer)) throw new Error('BuiltinTrainer runs builtin trainers only');
    const spec: LinearProbeSpec = {
      job: job.name,
      datasetPath: ctx.datasetRoot,
      datasetFormat: job.dataset.format,
      datasetColumns: {
        ...(job.dataset.labelColumn !== undefined ? { labelColumn: job.dataset.labelColumn } : {}),
        ...(job.dataset.imageColumn !== undefined ? { imageColumn: job.dataset.imageColumn } : {}),
        ...(job.dataset.featureColumns !== undefined ? { featureColumns: job.dataset.featureColumns } : {}),
      },
      baseModelPath: ctx.base.modelPath,
      input: ctx.baseInput,
      hyperparameters: job.trainer.hyperparameters,
      holdoutFraction: job.evaluation.holdoutFraction,
      outputDir: ctx.outputDir,
      outputModel: job.output.model,
      threads: this.opts.threads,
      ...(ctx.servedModelPath ? { servedModelPath: ctx.servedModelPath } : {}),
    };
    const specFile = path.join(ctx.runDir, 'spec.json');
    await writeFile(specFile, JSON.stringify(spec));
    const outcome = await TrainerProcess.run({
      command: this.opts.nodePath,
      args: [this.opts.entry ?? defaultLinearProbeEntry(), specFile],
      env: { PATH: process.env.PATH ?? '', ...(ctx.gpus.length > 0 ? { CUDA_VISIBLE_DEVICES: ctx.gpus.join(',') } : {}) },
      outputDir: ctx.outputDir,
      signal: ctx.signal,
      timeoutMs: ctx.timeoutMs,
      memoryLimitBytes: ctx.memoryLimitBytes,
      graceMs: ctx.graceMs,
      onEvent: ctx.onEvent,
      onLog: (line, stream) => ctx.log.debug({ stream }, line),
    });
    return { end: outcome.end, ...(outcome.failure !== undefined ? { failure: outcome.failure } : {}), ignoredLines: outcome.ignoredLines };
  }
}
