import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../../state/atomic-write.js';

/**
 * The process runtime's ledger, `<stateDir>/process-ledger.json`: every
 * process it started (pid, ports, model digest, how to restart it) and the
 * port each deployment last had. After an agent restart it is how the
 * runtime finds its workloads again, re-adopting the healthy ones and
 * stopping the rest, without ever touching a process it did not start.
 *
 * An entry without a pid is an intent: written (and fsynced) before the
 * spawn, completed with the pid and the process's start time right after.
 * So an agent killed at any moment leaves every process it started either
 * in the ledger or announced there by an intent that the next agent
 * resolves through the process's own marks (workload-marker.ts).
 */
export const LEDGER_FILE = 'process-ledger.json';

export const LaunchInfoSchema = z.discriminatedUnion('runtime', [
  z
    .object({
      runtime: z.literal('builtin'),
      modelName: z.string().min(1),
      modelVersion: z.string().min(1),
      modelPath: z.string().min(1),
      executionProvider: z.enum(['auto', 'cpu']),
    })
    .strict(),
  z.object({ runtime: z.literal('triton'), binary: z.string().min(1), repositoryPath: z.string().min(1) }).strict(),
]);

export const LedgerEntrySchema = z
  .object({
    instanceId: z.string().min(1),
    deployment: z.string().min(1),
    key: z.string().min(1),
    digest: z.string().min(1),
    modelName: z.string().min(1),
    modelVersion: z.string().min(1),
    /** Absent: an intent, the spawn may or may not have happened. */
    pid: z.number().int().positive().optional(),
    /** /proc field 22 of `pid`: tells the process from a later one that reused its pid. */
    startTime: z.number().int().min(0).optional(),
    /** When this launch answered ready (epoch ms); absent while it starts. */
    readySince: z.number().optional(),
    /** The command line of this launch, for people and for `flotilla agent stop-workloads`. */
    command: z.array(z.string()).optional(),
    port: z.number().int().min(1).max(65535),
    metricsPort: z.number().int().min(1).max(65535).optional(),
    // candidate: a new version still starting beside the active one when the agent stopped.
    role: z.enum(['active', 'draining', 'candidate']),
    drainUntil: z.number().optional(),
    startedAt: z.string(),
    restarts: z.number().int().min(0),
    launch: LaunchInfoSchema,
  })
  .strict();
export type LedgerEntry = z.infer<typeof LedgerEntrySchema>;

export const LedgerSchema = z
  .object({
    version: z.literal(1),
    processes: z.array(LedgerEntrySchema),
    ports: z.record(z.string(), z.number().int().min(1).max(65535)),
  })
  .strict();
export type Ledger = z.infer<typeof LedgerSchema>;

export const emptyLedger = (): Ledger => ({ version: 1, processes: [], ports: {} });
export const ledgerPath = (stateDir: string): string => path.join(stateDir, LEDGER_FILE);

/**
 * Reads the ledger; a missing file is an empty ledger. A corrupt one is
 * reported through `problem` and treated as empty: the runtime then starts
 * afresh rather than refusing to run, and leaves unknown processes alone.
 */
export async function readLedger(stateDir: string): Promise<{ ledger: Ledger; problem: string | null }> {
  const file = ledgerPath(stateDir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ledger: emptyLedger(), problem: null };
    return { ledger: emptyLedger(), problem: `cannot read ${file}: ${(err as Error).message}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ledger: emptyLedger(), problem: `${file} is not JSON: ${(err as Error).message}` };
  }
  const parsed = LedgerSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ledger: emptyLedger(), problem: `${file} is malformed at ${issue?.path.join('.') || '(root)'}: ${issue?.message}` };
  }
  return { ledger: parsed.data, problem: null };
}

export async function writeLedger(stateDir: string, ledger: Ledger): Promise<void> {
  await writeFileAtomic(ledgerPath(stateDir), `${JSON.stringify(ledger, null, 2)}\n`);
}

/**
 * The one way the runtime reads and writes its ledger. Writes are queued
 * one at a time, and each writes what `snapshot` returns when its turn
 * comes, so the file never goes back to an older state than a write that
 * was asked for earlier.
 */
export class ProcessLedger {
  private tail: Promise<unknown> = Promise.resolve();

  constructor(readonly stateDir: string) {}

  get file(): string {
    return ledgerPath(this.stateDir);
  }

  read(): Promise<{ ledger: Ledger; problem: string | null }> {
    return readLedger(this.stateDir);
  }

  /** Rejects when the file cannot be written; an intent must not be followed by a spawn then. */
  write(snapshot: () => Ledger): Promise<void> {
    const run = this.tail.then(() => writeLedger(this.stateDir, snapshot()));
    this.tail = run.catch(() => undefined);
    return run;
  }
}
