import { isAlive } from './proc-scan.js';
import type { SeededRandom } from './rng.js';
import type { TrialSystem } from './trial-system.js';

/**
 * SIGKILLs the parts of a trial's system and has them restarted, as a
 * supervisor (systemd) would, after a short random delay:
 *
 * - hub: the `flotilla hub` process alone (its embedded Postgres, a child,
 *   is left orphaned, as after a real kill -9), restarted;
 * - broker: the private Mosquitto, restarted with the same files (only with
 *   `--broker mosquitto`; the embedded broker dies with the hub);
 * - postgres: the hub's embedded postmaster (pid from `postmaster.pid`); not
 *   restarted by the harness: the hub owns it, and recovering is its job;
 * - agent: one `flotilla agent run` process (its inference servers, in
 *   their own process groups, live on), restarted.
 */

export type FaultTarget = 'hub' | 'broker' | 'postgres' | 'agent';
export const FAULT_TARGETS: readonly FaultTarget[] = ['hub', 'broker', 'postgres', 'agent'];

export interface FaultRecord {
  at: number;
  target: FaultTarget;
  /** The agent's name for `agent`. */
  unit: string;
  /** What fired it: a timer in the chaos window, or a step (`step 4 +120 ms` after its request went out). */
  trigger: string;
  pid: number | null;
  restartAfterMs: number | null;
  /** Why nothing was killed (already down, no such process). */
  skipped?: string;
}

export class FaultInjector {
  readonly faults: FaultRecord[] = [];

  constructor(
    private readonly system: TrialSystem,
    private readonly rng: SeededRandom,
    readonly targets: readonly FaultTarget[],
    private readonly restartDelayMs: { min: number; max: number },
  ) {}

  /** Picks a target: agents twice as often as each other kind (there are five of them). */
  pickTarget(): FaultTarget {
    const weighted = this.targets.flatMap((t) => (t === 'agent' ? [t, t] : [t]));
    return this.rng.pick(weighted);
  }

  async inject(target: FaultTarget, trigger: string, agentName?: string): Promise<FaultRecord> {
    const restartAfterMs = Math.round(this.rng.between(this.restartDelayMs.min, this.restartDelayMs.max));
    const base = { at: Date.now(), target, trigger };
    let record: FaultRecord;
    switch (target) {
      case 'hub': {
        const pid = this.system.hub?.crash(restartAfterMs) ?? null;
        record = { ...base, unit: 'hub', pid, restartAfterMs: pid ? restartAfterMs : null, ...(pid ? {} : { skipped: 'the hub was not running (restarting)' }) };
        break;
      }
      case 'broker': {
        const pid = (await this.system.mosquitto?.crash(restartAfterMs)) ?? null;
        record = { ...base, unit: 'mosquitto', pid, restartAfterMs: pid ? restartAfterMs : null, ...(pid ? {} : { skipped: 'Mosquitto was not running (restarting)' }) };
        break;
      }
      case 'postgres': {
        const pid = await this.system.embeddedPostmasterPid();
        let skipped: string | undefined;
        if (pid === null) skipped = 'no postmaster.pid under the hub home';
        else if (!isAlive(pid)) skipped = `postmaster ${pid} from postmaster.pid is not running`;
        else {
          try {
            process.kill(pid, 'SIGKILL');
          } catch (err) {
            skipped = `kill ${pid}: ${(err as Error).message}`;
          }
        }
        record = { ...base, unit: 'embedded postgres', pid: skipped ? null : pid, restartAfterMs: null, ...(skipped ? { skipped } : {}) };
        break;
      }
      case 'agent': {
        const names = [...this.system.agents.keys()];
        const name = agentName ?? this.rng.pick(names);
        const pid = this.system.agents.get(name)?.process.crash(restartAfterMs) ?? null;
        record = { ...base, unit: name, pid, restartAfterMs: pid ? restartAfterMs : null, ...(pid ? {} : { skipped: `agent ${name} was not running (restarting)` }) };
        break;
      }
    }
    this.faults.push(record);
    return record;
  }
}
