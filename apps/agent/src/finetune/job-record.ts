import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { JOB_RUN_STAGES, ProducedVersionSchema } from '@flotilla/contracts';
import { z } from 'zod';
import { writeFileAtomic } from '../state/atomic-write.js';

/** Where a fine-tuning run stands, as kept in the agent's state directory so it survives a restart. */
export const JOB_PHASES = JOB_RUN_STAGES;
export type JobPhase = (typeof JOB_PHASES)[number];
export const TERMINAL_PHASES: ReadonlySet<JobPhase> = new Set(['Succeeded', 'Failed', 'Rejected']);

export const JobRecordSchema = z
  .object({
    job: z.string(),
    /** sha256 of the job's rendered spec: a changed spec is a new run. */
    specHash: z.string(),
    attempt: z.number().int().min(1),
    phase: z.enum(JOB_PHASES),
    progress: z.number().min(0).max(1),
    metrics: z.record(z.string(), z.number()),
    /** Sent to the hub: numbers and names of models only. */
    message: z.string(),
    producedVersion: z.string().nullable(),
    producedDigest: z.string().nullable(),
    datasetFingerprint: z.string().nullable(),
    /** What the hub registers, once the run succeeded. */
    produced: ProducedVersionSchema.nullable().default(null),
    updatedAt: z.string(),
  })
  .strict();
export type JobRecord = z.infer<typeof JobRecordSchema>;

/** One JSON file per job under `<state>/finetune/records/`, written atomically. */
export class JobRecordStore {
  private readonly dir: string;

  constructor(stateDir: string) {
    this.dir = path.join(stateDir, 'finetune', 'records');
  }

  private file(job: string): string {
    return path.join(this.dir, `${job}.json`);
  }

  async load(job: string): Promise<JobRecord | null> {
    const text = await readFile(this.file(job), 'utf8').catch(() => null);
    if (text === null) return null;
    const parsed = JobRecordSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  }

  async save(record: JobRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await writeFileAtomic(this.file(record.job), `${JSON.stringify(record, null, 2)}\n`);
  }
}
