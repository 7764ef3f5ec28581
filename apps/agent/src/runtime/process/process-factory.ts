import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Logger } from 'pino';
import type { DesiredDeployment } from '@flotilla/contracts';
import { launchCommand, type LaunchInfo } from './launch.js';
import type { LogLimits } from './log-file.js';
import type { PortAllocator } from './ports.js';
import { SupervisedProcess, type AdoptedProcess, type ProcessIdentity, type SupervisorContext } from './supervised-process.js';
import { markerEnvironment } from './workload-marker.js';
import type { WorkloadTable } from './workload-table.js';

export interface ProcessFactorySettings {
  /** Spoke name, in each workload's marks. */
  spoke: string;
  stateDir: string;
  logsDir: string;
  /** Address workloads bind, and the one they are probed on. */
  host: string;
  probeHost: string;
  env: NodeJS.ProcessEnv;
  nodePath: string;
  builtinEntry: string;
  logLimits: LogLimits;
  restartBackoff: { initialMs: number; maxMs: number };
  stableAfterMs: number;
  startupTimeoutMs: number;
  stopGraceMs: number;
  watchIntervalMs: number;
  logger: Logger;
  now: () => Date;
}

/** What the runtime does when a supervised process needs it. */
export interface ProcessFactoryHooks {
  /** Writes the ledger and resolves once it is on disk (before a spawn). */
  recordIntent(): Promise<void>;
  /** Writes the ledger when it is convenient (after a spawn, on a state change). */
  persist(): void;
  /** The runtime re-reports. */
  changed(): void;
}

/**
 * Makes supervised processes, new or adopted, each with the supervisor
 * context that ties it to this runtime: its command line and marks, its log
 * file, its ports (never one held or remembered for another deployment),
 * and the ledger writes around each spawn.
 */
export class ProcessFactory {
  constructor(
    private readonly s: ProcessFactorySettings,
    private readonly table: WorkloadTable,
    private readonly allocator: PortAllocator,
    private readonly hooks: ProcessFactoryHooks,
  ) {}

  logFile(deployment: string): string {
    return path.join(this.s.logsDir, `${deployment}.log`);
  }

  /** A free port for `deployment`, `preferred` if possible. */
  allocate(deployment: string, preferred: number | undefined, self?: SupervisedProcess, extraAvoid: number[] = []): Promise<number> {
    const avoid = this.table.portsToAvoid(deployment, self);
    for (const port of extraAvoid) avoid.add(port);
    return this.allocator.allocate({ preferred, avoid });
  }

  /** A new process for `spec`, with its ports, not launched yet: the caller places it in the table, then launches it. */
  async create(spec: DesiredDeployment, key: string, launch: LaunchInfo, preferredPort: number | undefined): Promise<SupervisedProcess> {
    const identity: ProcessIdentity = {
      instanceId: randomUUID(),
      deployment: spec.name,
      key,
      digest: spec.model.digest,
      modelName: spec.model.name,
      modelVersion: spec.model.version,
      launch,
    };
    const port = await this.allocate(spec.name, preferredPort);
    const metricsPort = launch.runtime === 'triton' ? await this.allocate(spec.name, undefined, undefined, [port]) : undefined;
    return SupervisedProcess.create(identity, this.contextFor(identity), port, metricsPort);
  }

  adopt(identity: ProcessIdentity, found: AdoptedProcess): SupervisedProcess {
    return SupervisedProcess.adopt(identity, this.contextFor(identity), found);
  }

  private contextFor(identity: ProcessIdentity): SupervisorContext {
    const s = this.s;
    return {
      probeHost: s.probeHost,
      logFile: this.logFile(identity.deployment),
      logLimits: s.logLimits,
      env: s.env,
      command: (port, metricsPort) =>
        launchCommand(identity.launch, {
          host: s.host,
          port,
          metricsPort,
          nodePath: s.nodePath,
          builtinEntry: s.builtinEntry,
          // The server's own drain must end before our SIGKILL.
          graceSeconds: Math.max(1, Math.floor(s.stopGraceMs / 1000) - 1),
        }),
      marks: (port, metricsPort) => markerEnvironment({ spoke: s.spoke, stateDir: s.stateDir, identity, port, metricsPort }),
      needsMetricsPort: identity.launch.runtime === 'triton',
      allocatePort: (preferred, self) => this.allocate(identity.deployment, preferred, self),
      restartBackoff: s.restartBackoff,
      stableAfterMs: s.stableAfterMs,
      startupTimeoutMs: s.startupTimeoutMs,
      watchIntervalMs: s.watchIntervalMs,
      recordIntent: () => {
        s.logger.debug({ deployment: identity.deployment, instance: identity.instanceId }, 'recording the intent to start a workload process');
        return this.hooks.recordIntent();
      },
      onChange: () => {
        this.hooks.persist();
        this.hooks.changed();
      },
      onRelaunched: () => {
        const active = this.table.active(identity.deployment);
        if (active?.identity === identity) this.table.rememberPort(identity.deployment, active.port);
        this.hooks.persist();
      },
      logger: s.logger,
      now: () => s.now().getTime(),
    };
  }
}
