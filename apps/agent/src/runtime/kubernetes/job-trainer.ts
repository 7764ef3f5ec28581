import { copyFile, mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { jobSpecHash } from '../../finetune/finetune-runner.js';
import { AGENT_STOPPING, type Trainer, type TrainerRunContext, type TrainerRunResult } from '../../finetune/trainer.js';
import { MAX_TRAINER_LINE, OUTPUT_FILES, parseTrainerLine, TRAINER_LINE_PREFIX } from '../../finetune/trainer-contract.js';
import type { SourcePolicy } from '../../security/source-policy.js';
import { sleep } from '../../support/abort.js';
import type { KubeApi } from './kube-api.js';
import { LABEL_JOB, LABEL_MANAGED_BY, MANAGED_BY } from './labels.js';
import { ANNOTATION_JOB_SPEC, renderFineTuneJob, TRAINER_CONTAINER, type JobRunDirs, type ManifestOptions } from './manifests.js';
import { stringRecord, type JsonMap, type LiveObject } from './objects.js';

/** What a run following a Job from before an agent restart says (its pod notes keep it). */
const RESUMED = 'resumed after an agent restart: following the Job already in the cluster';

export interface KubernetesJobTrainerOptions {
  api: KubeApi;
  manifest: ManifestOptions;
  sources: SourcePolicy;
  /** How often the Job, its pod and its log are read (default 2 s). */
  pollMs?: number;
}

const map = (v: unknown): JsonMap => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonMap) : {});
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/**
 * `trainer.image` under the Kubernetes runtime: one batch/v1 Job per run
 * (renderFineTuneJob), followed by polling the Job, its pod and the pod's
 * log (contract lines become progress and metrics), its output collected
 * from the output hostPath once the Job completed. The runner then
 * validates, evaluates and registers it like any trainer's. A Job still
 * running when the agent stops is left running; the next agent recognises
 * it by its `flotilla.dev/job-spec` annotation and follows it again.
 */
export class KubernetesJobTrainer implements Trainer {
  readonly kind = 'image' as const;
  readonly trusted = false;

  constructor(private readonly opts: KubernetesJobTrainerOptions) {}

  /** The run's directories on the node, under the job output host path (the agent sees the same path). */
  dirs(job: string, specHash: string): JobRunDirs {
    const base = path.join(this.opts.manifest.jobOutputHostPath, job, specHash.slice(0, 16));
    return { input: path.join(base, 'input'), output: path.join(base, 'output') };
  }

  async run(ctx: TrainerRunContext): Promise<TrainerRunResult> {
    const { job, signal } = ctx;
    if (!('image' in job.trainer)) throw new Error('KubernetesJobTrainer runs image trainers only');
    const trainer = job.trainer;
    this.opts.sources.checkTrainerImage(trainer.image);
    this.opts.sources.datasetHostPath(ctx.datasetRoot);
    const hash = jobSpecHash(job);
    const dirs = this.dirs(job.name, hash);
    const api = this.opts.api;
    const existing = await api.read({ kind: 'Job', name: job.name }, signal);
    let live: LiveObject | undefined;
    let resumed = false;
    if (existing && existing.labels[LABEL_MANAGED_BY] !== MANAGED_BY) throw new Error(`a Job named ${job.name} exists in the namespace and is not Flotilla's; it is left alone`);
    if (existing && existing.annotations[ANNOTATION_JOB_SPEC] === hash) {
      live = existing;
      resumed = true;
      ctx.onNote(RESUMED);
      ctx.log.info({ job: job.name }, 'following the Job a previous agent started');
    } else {
      if (existing) await this.deleteAndWait(existing, signal);
      await rm(dirs.output, { recursive: true, force: true });
      await mkdir(dirs.output, { recursive: true });
      await mkdir(dirs.input, { recursive: true });
      await copyFile(ctx.hyperparametersFile, path.join(dirs.input, 'hparams.json'));
      await copyFile(ctx.holdoutFile, path.join(dirs.input, 'holdout.txt'));
      const checked = { ...job, dataset: { ...job.dataset, path: ctx.datasetRoot } };
      const body = renderFineTuneJob(checked, trainer, ctx.base, this.opts.manifest, {
        dirs,
        jobSpecHash: hash,
        datasetFingerprint: ctx.datasetFingerprint,
        attempt: ctx.attempt,
        timeoutSeconds: Math.max(1, Math.ceil(ctx.timeoutMs / 1000)),
        graceSeconds: Math.max(1, Math.ceil(ctx.graceMs / 1000)),
      }).body;
      live = await api.apply(body, true, signal);
      ctx.log.info({ job: job.name }, 'trainer Job created');
    }
    return this.follow(ctx, live, dirs, resumed);
  }

  /** `resumed`: a Job a previous agent started; every pod note says so, until the run ends. */
  private async follow(ctx: TrainerRunContext, initial: LiveObject | undefined, dirs: JobRunDirs, resumed: boolean): Promise<TrainerRunResult> {
    const { job, signal } = ctx;
    const api = this.opts.api;
    const started = Date.now();
    let consumed = 0;
    let ignored = 0;
    let uid = initial?.uid;
    let lastNote: string | null = null;
    const readLog = async (pod: string) => {
      const text = await api.readPodLog(pod, TRAINER_CONTAINER, signal).catch(() => null);
      if (text === null || text.length <= consumed) return;
      const end = text.lastIndexOf('\n') + 1;
      if (end <= consumed) return;
      for (const line of text.slice(consumed, end - 1).split('\n')) {
        const e = parseTrainerLine(line);
        if (e) ctx.onEvent(e);
        else {
          if (line.startsWith(TRAINER_LINE_PREFIX.trim())) ignored += 1;
          ctx.log.debug({ stream: 'pod' }, line.slice(0, MAX_TRAINER_LINE));
        }
      }
      consumed = end;
    };
    const stopWith = async (end: TrainerRunResult['end'], failure: string): Promise<TrainerRunResult> => {
      const current = await api.read({ kind: 'Job', name: job.name }, AbortSignal.timeout(30_000)).catch(() => undefined);
      if (current && current.uid === uid) await api.delete({ kind: 'Job', name: job.name, uid: current.uid }, AbortSignal.timeout(30_000)).catch(() => undefined);
      return { end, failure, ignoredLines: ignored };
    };
    for (;;) {
      if (signal.aborted) {
        // The agent stopping leaves the Job running (the next agent follows it); a cancellation deletes it (SIGTERM, SIGKILL after the grace period).
        if (signal.reason === AGENT_STOPPING) return { end: 'cancelled', failure: 'the agent stopped', ignoredLines: ignored };
        return stopWith('cancelled', 'cancelled');
      }
      if (Date.now() - started > ctx.timeoutMs) return stopWith('timed-out', `stopped after the ${Math.round(ctx.timeoutMs / 1000)} s timeout`);
      let jobObj: LiveObject | undefined;
      try {
        jobObj = await api.read({ kind: 'Job', name: job.name }, signal);
        if (!jobObj) return { end: 'failed', failure: 'the trainer Job was deleted by someone else', ignoredLines: ignored };
        uid = jobObj.uid;
        const pod = (await api.listPods(signal))
          .filter((p) => stringRecord(map(p['metadata'])['labels'])[LABEL_JOB] === job.name)
          .sort((a, b) => String(map(b['metadata'])['creationTimestamp']).localeCompare(String(map(a['metadata'])['creationTimestamp'])))[0];
        const podName = pod ? String(map(pod['metadata'])['name']) : null;
        const podPhase = pod ? String(map(pod['status'])['phase'] ?? '') : '';
        if (podName && podPhase !== 'Pending' && podPhase !== '') await readLog(podName);
        const status = map(jobObj.body['status']);
        const condition = (type: string) => list(status['conditions']).map(map).find((c) => c['type'] === type && c['status'] === 'True');
        if (condition('Complete')) {
          await this.collect(dirs.output, ctx.outputDir);
          return { end: 'succeeded', ignoredLines: ignored };
        }
        const failed = condition('Failed');
        if (failed) {
          const failureFile = await readFile(path.join(dirs.output, OUTPUT_FILES.failure), 'utf8').catch(() => null);
          const terminated = pod ? list(map(pod['status'])['containerStatuses']).map(map).map((c) => map(map(c['state'])['terminated'])) : [];
          const oom = terminated.some((t) => t['reason'] === 'OOMKilled');
          const reason = String(failed['reason'] ?? '');
          const end = reason === 'DeadlineExceeded' ? 'timed-out' : oom ? 'memory-exceeded' : 'failed';
          const what = [reason === 'DeadlineExceeded' ? `stopped by the cluster after the ${Math.round(ctx.timeoutMs / 1000)} s timeout` : '', oom ? `killed by the cluster for going above its memory limit ${job.resources?.memory ?? ''}`.trim() : '', failureFile?.slice(0, MAX_TRAINER_LINE).trim() ?? '', !failureFile && !oom && reason !== 'DeadlineExceeded' ? `${reason || 'Failed'}: ${String(failed['message'] ?? '')}`.trim() : '']
            .filter((s) => s !== '')
            .join('; ');
          return { end, failure: what, ignoredLines: ignored };
        }
        const note = podPhase === 'Running' ? 'the trainer pod is running' : podPhase === 'Pending' || podPhase === '' ? 'waiting for the trainer pod to start' : null;
        // Said once per pod state, so the trainer's own progress messages are not hidden.
        if (note !== null && note !== lastNote) ctx.onNote(resumed ? `${RESUMED}; ${note}` : note);
        lastNote = note;
      } catch (err) {
        if (signal.aborted) continue;
        ctx.log.warn({ err: (err as Error).message }, 'could not read the trainer Job; retrying');
      }
      await sleep(this.opts.pollMs ?? 2000, signal).catch(() => undefined);
    }
  }

  private async collect(from: string, to: string): Promise<void> {
    await mkdir(to, { recursive: true });
    for (const f of [OUTPUT_FILES.model, OUTPUT_FILES.labels, OUTPUT_FILES.metrics]) {
      await copyFile(path.join(from, f), path.join(to, f)).catch(async (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
        await rm(path.join(to, f), { force: true });
      });
    }
  }

  private async deleteAndWait(obj: LiveObject, signal: AbortSignal): Promise<void> {
    await this.opts.api.delete({ kind: 'Job', name: obj.name, uid: obj.uid }, signal);
    for (let i = 0; i < 300; i += 1) {
      const again = await this.opts.api.read({ kind: 'Job', name: obj.name }, signal);
      if (!again || again.uid !== obj.uid) return;
      await sleep(this.opts.pollMs ?? 2000, signal);
    }
    throw new Error(`the previous Job ${obj.name} is still being deleted`);
  }

  /** Removes the Job of a job that left the desired state. */
  async forget(job: string): Promise<void> {
    const signal = AbortSignal.timeout(30_000);
    const live = await this.opts.api.read({ kind: 'Job', name: job }, signal);
    if (live && live.labels[LABEL_MANAGED_BY] === MANAGED_BY) await this.opts.api.delete({ kind: 'Job', name: job, uid: live.uid }, signal);
  }
}

