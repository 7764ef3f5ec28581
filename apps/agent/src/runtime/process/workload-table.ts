import type { Ledger, LedgerEntry } from './ledger.js';
import type { Observed, ObservedProcess, StartFailure } from './plan.js';
import type { SupervisedProcess } from './supervised-process.js';

/** A deployment's processes: the one serving, a new version starting beside it, replaced ones draining. */
interface Slot {
  active: SupervisedProcess | undefined;
  candidate: SupervisedProcess | undefined;
  draining: SupervisedProcess[];
}

/**
 * What the process runtime supervises, by deployment, and the port each
 * deployment last had (so its endpoint stays put across restarts). The
 * planner's view (`observe`) and the ledger's content (`ledgerSnapshot`)
 * are both read from here, so they cannot disagree.
 */
export class WorkloadTable {
  private readonly slots = new Map<string, Slot>();
  private ports: Record<string, number> = {};

  private slot(deployment: string): Slot {
    let s = this.slots.get(deployment);
    if (!s) {
      s = { active: undefined, candidate: undefined, draining: [] };
      this.slots.set(deployment, s);
    }
    return s;
  }

  active(deployment: string): SupervisedProcess | undefined {
    return this.slots.get(deployment)?.active;
  }

  /** Makes `p` the deployment's serving process and remembers its port. */
  setActive(p: SupervisedProcess): void {
    const s = this.slot(p.identity.deployment);
    if (s.candidate === p) s.candidate = undefined;
    s.active = p;
    this.ports[p.identity.deployment] = p.port;
  }

  setCandidate(p: SupervisedProcess): void {
    this.slot(p.identity.deployment).candidate = p;
  }

  clearCandidate(p: SupervisedProcess): void {
    const s = this.slots.get(p.identity.deployment);
    if (s?.candidate === p) s.candidate = undefined;
  }

  /** Moves `p` (the previous active one) to the draining list. */
  addDraining(p: SupervisedProcess): void {
    const s = this.slot(p.identity.deployment);
    if (s.active === p) s.active = undefined;
    if (!s.draining.includes(p)) s.draining.push(p);
  }

  isDraining(p: SupervisedProcess): boolean {
    return this.slots.get(p.identity.deployment)?.draining.includes(p) ?? false;
  }

  remove(p: SupervisedProcess): void {
    const s = this.slots.get(p.identity.deployment);
    if (!s) return;
    if (s.active === p) s.active = undefined;
    if (s.candidate === p) s.candidate = undefined;
    s.draining = s.draining.filter((x) => x !== p);
  }

  all(): SupervisedProcess[] {
    return [...this.slots.values()].flatMap((s) => [s.active, s.candidate, ...s.draining]).filter((p) => p !== undefined);
  }

  find(instanceId: string): SupervisedProcess | undefined {
    return this.all().find((p) => p.identity.instanceId === instanceId);
  }

  deployments(): string[] {
    return [...this.slots.keys()];
  }

  /** Deletes everything, for a close that stopped every process. */
  clear(): void {
    this.slots.clear();
  }

  portOf(deployment: string): number | undefined {
    return this.ports[deployment];
  }

  rememberPort(deployment: string, port: number): void {
    this.ports[deployment] = port;
  }

  restorePorts(ports: Record<string, number>): void {
    this.ports = { ...ports };
  }

  /** Ports held or remembered for anything but `deployment`'s own process `self`. */
  portsToAvoid(deployment: string, self?: SupervisedProcess): Set<number> {
    const avoid = new Set<number>();
    for (const p of this.all()) {
      if (p === self) continue;
      avoid.add(p.port);
      if (p.metricsPort !== undefined) avoid.add(p.metricsPort);
    }
    for (const [name, port] of Object.entries(this.ports)) if (name !== deployment) avoid.add(port);
    return avoid;
  }

  /** Drops deployments no longer desired once nothing of theirs runs; returns the names dropped. */
  forgetRemoved(desiredNames: ReadonlySet<string>): string[] {
    for (const [name, s] of this.slots) {
      if (!desiredNames.has(name) && !s.active && !s.candidate && s.draining.length === 0) this.slots.delete(name);
    }
    const dropped = Object.keys(this.ports).filter((name) => !desiredNames.has(name) && !this.slots.has(name));
    for (const name of dropped) delete this.ports[name];
    return dropped;
  }

  isKnown(deployment: string): boolean {
    return this.slots.has(deployment);
  }

  observe(failures: readonly StartFailure[]): Observed {
    const view = (p: SupervisedProcess, role: 'active' | 'draining'): ObservedProcess => ({
      instanceId: p.identity.instanceId,
      deployment: p.identity.deployment,
      key: p.identity.key,
      role,
      state: p.state === 'ready' ? 'ready' : p.state === 'starting' ? 'starting' : 'backoff',
      ...(role === 'draining' && p.drainUntil !== undefined ? { drainUntil: p.drainUntil } : {}),
    });
    const processes: ObservedProcess[] = [];
    for (const s of this.slots.values()) {
      if (s.active) processes.push(view(s.active, 'active'));
      for (const p of s.draining) processes.push(view(p, 'draining'));
    }
    return { processes, failures };
  }

  ledgerSnapshot(): Ledger {
    const processes: LedgerEntry[] = [];
    for (const s of this.slots.values()) {
      const roles: [SupervisedProcess | undefined, LedgerEntry['role']][] = [
        [s.active, 'active'],
        [s.candidate, 'candidate'],
        ...s.draining.map((p): [SupervisedProcess, LedgerEntry['role']] => [p, 'draining']),
      ];
      for (const [p, role] of roles) {
        const entry = p?.ledgerEntry(role);
        if (entry) processes.push(entry);
      }
    }
    return { version: 1, processes, ports: { ...this.ports } };
  }
}
