import { z } from 'zod';
import { listPids, readEnviron, readProcStat } from '../../support/proc.js';
import { LaunchInfoSchema } from './ledger.js';
import { INSTANCE_ENV } from './os-process.js';

/**
 * Marks set in the environment of every workload process, so that the
 * process itself says whose it is, whatever happened to the ledger. An agent
 * killed between a spawn and the ledger write that records its pid leaves a
 * process the ledger only knows as an intent; the next agent finds it by
 * these marks (in /proc/<pid>/environ) and adopts or stops it.
 *
 * - `FLOTILLA_WORKLOAD=<spoke>/<deployment>/<instance id>`: for people (`ps e`, `grep`).
 * - `FLOTILLA_AGENT_STATE_DIR=<dir>`: which agent started it; an agent only
 *   ever touches processes carrying its own state directory.
 * - `FLOTILLA_WORKLOAD_SPEC=<json>`: what the ledger would hold about it, so a
 *   process the ledger lost can still be adopted.
 * - `FLOTILLA_PROCESS_INSTANCE=<instance id>`: the instance alone (also set by
 *   earlier agents, whose ledgers name their processes by it).
 */
export const WORKLOAD_ENV = 'FLOTILLA_WORKLOAD';
export const STATE_DIR_ENV = 'FLOTILLA_AGENT_STATE_DIR';
export const WORKLOAD_SPEC_ENV = 'FLOTILLA_WORKLOAD_SPEC';

export const WorkloadSpecSchema = z
  .object({
    deployment: z.string().min(1),
    key: z.string().min(1),
    digest: z.string().min(1),
    modelName: z.string().min(1),
    modelVersion: z.string().min(1),
    port: z.number().int().min(1).max(65535),
    metricsPort: z.number().int().min(1).max(65535).optional(),
    launch: LaunchInfoSchema,
  })
  .strict();
export type WorkloadSpec = z.infer<typeof WorkloadSpecSchema>;

/** The environment entries that mark one launch of a workload. */
export function markerEnvironment(o: {
  spoke: string;
  stateDir: string;
  identity: Omit<WorkloadSpec, 'port' | 'metricsPort'> & { instanceId: string };
  port: number;
  metricsPort: number | undefined;
}): Record<string, string> {
  const { identity } = o;
  const spec: WorkloadSpec = {
    deployment: identity.deployment,
    key: identity.key,
    digest: identity.digest,
    modelName: identity.modelName,
    modelVersion: identity.modelVersion,
    port: o.port,
    ...(o.metricsPort !== undefined ? { metricsPort: o.metricsPort } : {}),
    launch: identity.launch,
  };
  return {
    [WORKLOAD_ENV]: `${o.spoke}/${identity.deployment}/${identity.instanceId}`,
    [STATE_DIR_ENV]: o.stateDir,
    [WORKLOAD_SPEC_ENV]: JSON.stringify(spec),
    [INSTANCE_ENV]: identity.instanceId,
  };
}

/** A running process that carries the marks of one agent's state directory. */
export interface MarkedProcess {
  pid: number;
  /** /proc field 22, to tell this process from a later one with its pid. */
  startTime: number;
  instanceId: string;
  deployment: string;
  /** What it was started as; null if the spec mark is unreadable (then it can only be stopped). */
  spec: WorkloadSpec | null;
}

function parseSpec(text: string | undefined): WorkloadSpec | null {
  if (text === undefined) return null;
  try {
    const parsed = WorkloadSpecSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/**
 * Every live process on the machine that carries `stateDir`'s marks. Only
 * the leader of each process group counts (a workload is spawned detached
 * and leads its own; children it forks inherit the marks and are reached by
 * signalling the group), unless the leader is gone and a child remains.
 * Empty where /proc is not there.
 */
export async function findMarkedProcesses(stateDir: string): Promise<MarkedProcess[]> {
  const found: (MarkedProcess & { pgrp: number })[] = [];
  for (const pid of await listPids()) {
    if (pid === process.pid) continue;
    const env = await readEnviron(pid);
    if (env?.get(STATE_DIR_ENV) !== stateDir) continue;
    const instanceId = env.get(INSTANCE_ENV);
    const stat = await readProcStat(pid);
    if (!instanceId || !stat || stat.state === 'Z' || stat.state === 'X') continue;
    const spec = parseSpec(env.get(WORKLOAD_SPEC_ENV));
    const deployment = spec?.deployment ?? env.get(WORKLOAD_ENV)?.split('/')[1] ?? 'unknown';
    found.push({ pid, startTime: stat.startTime, pgrp: stat.pgrp, instanceId, deployment, spec });
  }
  const leaders = new Set(found.filter((p) => p.pgrp === p.pid).map((p) => p.pgrp));
  return found.filter((p) => p.pgrp === p.pid || !leaders.has(p.pgrp)).map(({ pgrp: _pgrp, ...p }) => p);
}
