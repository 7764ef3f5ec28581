import type { Logger } from 'pino';
import type { DesiredDeployment } from '@flotilla/contracts';
import { sleep } from '../../support/abort.js';
import { processAgeMs } from '../../support/proc.js';
import type { DrainScheduler } from './executors/drain-scheduler.js';
import type { LedgerEntry, ProcessLedger } from './ledger.js';
import { isAlive, ownsProcess, sameProcess, terminateGroup } from './os-process.js';
import type { ProcessFactory } from './process-factory.js';
import { probeReady } from './readiness.js';
import { formatHost, type ProcessIdentity } from './supervised-process.js';
import { findMarkedProcesses, type MarkedProcess } from './workload-marker.js';
import type { WorkloadTable } from './workload-table.js';

/** A process found running that this agent may take over. */
interface Found {
  identity: ProcessIdentity;
  pid: number;
  startTime: number | undefined;
  port: number;
  metricsPort: number | undefined;
  role: LedgerEntry['role'];
  drainUntil: number | undefined;
  startedAt: string;
  restarts: number;
  /** The previous agent saw this launch ready (so not answering now means hung, not starting). */
  wasReady: boolean;
  command: string[] | undefined;
  /** Whether /proc confirmed it carries our marks; `unknown`: then it is never signalled. */
  owned: boolean | 'unknown';
}

export interface LedgerRecoveryOptions {
  stateDir: string;
  ledger: ProcessLedger;
  table: WorkloadTable;
  factory: ProcessFactory;
  drains: DrainScheduler;
  probeHost: string;
  stopGraceMs: number;
  startupTimeoutMs: number;
  logger: Logger;
  now: () => Date;
}

/**
 * At the runtime's first reconcile, squares the ledger with the processes
 * that really run, so that whatever moment the previous agent died at,
 * nothing it started is left untracked:
 *
 * - an entry whose process runs (same pid and start time, our marks) is
 *   re-adopted if it answers ready, or is still starting within its startup
 *   timeout; otherwise it is stopped;
 * - an intent (an entry with no pid: the agent died around the spawn) or an
 *   entry whose pid is stale (it died around a restart) is resolved by the
 *   marks in /proc/<pid>/environ, then treated the same way;
 * - a process with this state directory's marks that the ledger does not
 *   list at all is adopted if it serves a desired deployment that has no
 *   process yet, and stopped otherwise;
 * - an entry whose process is gone is dropped.
 *
 * A pid that now belongs to another process is never signalled.
 */
export class LedgerRecovery {
  constructor(private readonly o: LedgerRecoveryOptions) {}

  async recover(desired: readonly DesiredDeployment[], signal: AbortSignal): Promise<void> {
    const { logger } = this.o;
    const { ledger, problem } = await this.o.ledger.read();
    if (problem) logger.warn({ problem }, 'ignoring an unreadable process ledger; processes carrying this agent\'s marks are still found and adopted or stopped');
    this.o.table.restorePorts(ledger.ports);
    const marked = new Map<string, MarkedProcess>();
    const strays: MarkedProcess[] = [];
    for (const m of await findMarkedProcesses(this.o.stateDir)) {
      if (marked.has(m.instanceId)) strays.push(m);
      else marked.set(m.instanceId, m);
    }
    const stops: Promise<void>[] = [];

    for (const entry of ledger.processes) {
      const mark = marked.get(entry.instanceId);
      marked.delete(entry.instanceId);
      const found = await this.resolve(entry, mark);
      if (!found) continue;
      await this.settle(found, signal, stops);
    }

    const desiredNames = new Set(desired.map((d) => d.name));
    for (const m of marked.values()) {
      if (!m.spec) {
        logger.warn({ pid: m.pid, deployment: m.deployment }, 'stopping a process with this agent\'s marks that the ledger does not know and whose spec is unreadable');
        stops.push(this.terminate(m.pid, m.deployment, signal));
        continue;
      }
      if (!desiredNames.has(m.spec.deployment) || this.o.table.active(m.spec.deployment)) {
        logger.warn({ pid: m.pid, deployment: m.spec.deployment }, 'stopping a process with this agent\'s marks that the ledger does not know and no deployment needs');
        stops.push(this.terminate(m.pid, m.spec.deployment, signal));
        continue;
      }
      logger.info({ pid: m.pid, deployment: m.spec.deployment }, 'found a process with this agent\'s marks that the ledger does not know; it serves a desired deployment');
      const { spec } = m;
      await this.settle(
        {
          identity: {
            instanceId: m.instanceId,
            deployment: spec.deployment,
            key: spec.key,
            digest: spec.digest,
            modelName: spec.modelName,
            modelVersion: spec.modelVersion,
            launch: spec.launch,
          },
          pid: m.pid,
          startTime: m.startTime,
          port: spec.port,
          metricsPort: spec.metricsPort,
          role: 'active',
          drainUntil: undefined,
          startedAt: this.o.now().toISOString(),
          restarts: 0,
          wasReady: false,
          command: undefined,
          owned: true,
        },
        signal,
        stops,
      );
    }
    for (const m of strays) {
      logger.warn({ pid: m.pid, deployment: m.deployment }, 'stopping a second process carrying the marks of one workload instance');
      stops.push(this.terminate(m.pid, m.deployment, signal));
    }
    await Promise.all(stops);
    await this.o.ledger.write(() => this.o.table.ledgerSnapshot());
  }

  /** The running process behind a ledger entry, or null (gone, never started, or someone else's now). */
  private async resolve(entry: LedgerEntry, mark: MarkedProcess | undefined): Promise<Found | null> {
    const { logger } = this.o;
    let pid = entry.pid;
    let startTime = entry.startTime;
    let port = entry.port;
    let metricsPort = entry.metricsPort;
    let owned: boolean | 'unknown' = true;
    let wasReady = entry.readySince !== undefined;
    if (mark) {
      // The process's own marks win: after a restart the ledger may still hold the previous pid and port.
      if (mark.pid !== pid) {
        logger.info({ deployment: entry.deployment, pid: mark.pid, recorded: pid ?? 'intent' }, 'found the process of an unfinished ledger entry by its marks');
        wasReady = false;
      }
      pid = mark.pid;
      startTime = mark.startTime;
      port = mark.spec?.port ?? port;
      metricsPort = mark.spec ? mark.spec.metricsPort : metricsPort;
    } else if (pid === undefined) {
      logger.info({ deployment: entry.deployment, instance: entry.instanceId }, 'dropping an intent whose process never started');
      return null;
    } else {
      if (!(await isAlive(pid))) return null;
      owned = await ownsProcess(pid, entry.instanceId);
      if (owned === false || !(await sameProcess(pid, startTime))) {
        logger.info({ pid, deployment: entry.deployment }, 'ledger pid now belongs to another process; leaving it alone');
        return null;
      }
    }
    return {
      identity: {
        instanceId: entry.instanceId,
        deployment: entry.deployment,
        key: entry.key,
        digest: entry.digest,
        modelName: entry.modelName,
        modelVersion: entry.modelVersion,
        launch: entry.launch,
      },
      pid,
      startTime,
      port,
      metricsPort,
      role: entry.role,
      drainUntil: entry.drainUntil,
      startedAt: entry.startedAt,
      restarts: entry.restarts,
      wasReady,
      command: entry.command,
      owned,
    };
  }

  /** Adopts `found` (ready, or still starting in time) or stops it. */
  private async settle(found: Found, signal: AbortSignal, stops: Promise<void>[]): Promise<void> {
    const { logger, table } = this.o;
    const { identity, pid } = found;
    const ready = found.role !== 'candidate' && (await this.answersReady(found.port, signal));
    let starting = false;
    if (!ready && found.role !== 'candidate' && !found.wasReady) {
      const age = await processAgeMs(pid);
      starting = age !== null && age < this.o.startupTimeoutMs;
    }
    if (!ready && !starting) {
      if (found.owned === true) {
        logger.warn({ pid, deployment: identity.deployment, role: found.role }, 'stopping an orphaned workload process');
        stops.push(this.terminate(pid, identity.deployment, signal));
      }
      return;
    }
    const asDraining = found.role === 'draining' || table.active(identity.deployment) !== undefined;
    const p = this.o.factory.adopt(identity, {
      pid,
      ...(found.startTime !== undefined ? { startTime: found.startTime } : {}),
      port: found.port,
      ...(found.metricsPort !== undefined ? { metricsPort: found.metricsPort } : {}),
      startedAt: found.startedAt,
      restarts: found.restarts,
      role: asDraining ? 'draining' : 'active',
      ...(asDraining ? { drainUntil: found.drainUntil ?? this.o.now().getTime() } : {}),
      ready,
      ...(found.command ? { command: found.command } : {}),
    });
    logger.info({ pid, deployment: identity.deployment, port: found.port, ready }, ready ? 're-adopted a running workload process' : 're-adopted a workload process that is still starting');
    if (asDraining) {
      table.addDraining(p);
      this.o.drains.arm(p);
    } else {
      table.setActive(p);
    }
  }

  private async terminate(pid: number, deployment: string, signal: AbortSignal): Promise<void> {
    const how = await terminateGroup(pid, this.o.stopGraceMs, signal).catch(() => 'aborted');
    this.o.logger.info({ pid, deployment, how }, 'stopped a workload process this agent does not keep');
  }

  private async answersReady(port: number, signal: AbortSignal): Promise<boolean> {
    const url = `http://${formatHost(this.o.probeHost)}:${port}`;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      if (await probeReady(url, 2000, signal)) return true;
      signal.throwIfAborted();
      await sleep(200, signal);
    }
    return false;
  }
}
