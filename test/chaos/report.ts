import { FAULT_TARGETS, type FaultTarget } from './fault-injector.js';
import { INVARIANTS, type InvariantName } from './invariants/invariant.js';
import type { TrialReport } from './trial.js';

/** The run's summary: what was injected, and per invariant in how many trials it held. */

export interface RunSummary {
  trials: number;
  trialsWithError: number;
  faultsInjected: Record<FaultTarget, number>;
  faultsSkipped: number;
  invariants: Record<InvariantName, { held: number; violated: number; unverifiable: number; notChecked: number }>;
  ok: boolean;
}

export function summarize(trials: TrialReport[]): RunSummary {
  const faultsInjected = Object.fromEntries(FAULT_TARGETS.map((t) => [t, 0])) as Record<FaultTarget, number>;
  let faultsSkipped = 0;
  for (const t of trials) {
    for (const f of t.faults) {
      if (f.skipped) faultsSkipped++;
      else faultsInjected[f.target]++;
    }
  }
  const invariants = {} as RunSummary['invariants'];
  for (const name of Object.keys(INVARIANTS) as InvariantName[]) {
    const c = { held: 0, violated: 0, unverifiable: 0, notChecked: 0 };
    for (const t of trials) {
      const r = t.invariants[name];
      if (!r) c.notChecked++;
      else c[r.status]++;
    }
    invariants[name] = c;
  }
  const trialsWithError = trials.filter((t) => t.error).length;
  const ok = trials.length > 0 && trialsWithError === 0 && Object.values(invariants).every((c) => c.violated === 0 && c.unverifiable === 0 && c.notChecked === 0);
  return { trials: trials.length, trialsWithError, faultsInjected, faultsSkipped, invariants, ok };
}

export function renderSummary(s: RunSummary, trials: TrialReport[], reportFile: string): string {
  const lines: string[] = [];
  lines.push('');
  lines.push(`trials run: ${s.trials}${s.trialsWithError ? ` (${s.trialsWithError} could not finish: see "error" in the report)` : ''}`);
  lines.push(`faults injected: ${FAULT_TARGETS.map((t) => `${t} ${s.faultsInjected[t]}`).join(', ')}${s.faultsSkipped ? ` (${s.faultsSkipped} skipped: target already down)` : ''}`);
  lines.push('invariants:');
  for (const [name, c] of Object.entries(s.invariants) as [InvariantName, RunSummary['invariants'][InvariantName]][]) {
    const verdict = c.violated + c.unverifiable + c.notChecked === 0 ? 'HELD' : 'VIOLATED';
    const extra = [c.violated ? `violated in ${c.violated}` : '', c.unverifiable ? `unverifiable in ${c.unverifiable}` : '', c.notChecked ? `not checked in ${c.notChecked}` : ''].filter(Boolean).join(', ');
    lines.push(`  ${verdict.padEnd(9)} ${name.padEnd(21)} held in ${c.held}/${s.trials}${extra ? `; ${extra}` : ''}  (${INVARIANTS[name]})`);
  }
  for (const t of trials) {
    if (t.error) lines.push(`  trial ${t.index}: error: ${t.error.split('\n')[0]}`);
    for (const [name, r] of Object.entries(t.invariants)) {
      for (const v of r!.violations.slice(0, 4)) lines.push(`  trial ${t.index} ${name}: ${v.message}`);
      if (r!.violations.length > 4) lines.push(`  trial ${t.index} ${name}: ... and ${r!.violations.length - 4} more`);
    }
    for (const c of t.crashes) {
      const kinds = [...new Set(c.exits.map((e) => (e.signal ? `signal ${e.signal}${e.note ? ' not sent by the harness' : ''}` : `code ${e.code}`)))];
      lines.push(`  trial ${t.index}: ${c.unit} exited without a harness fault ${c.count} time(s) (${kinds.join(', ')})`);
    }
  }
  lines.push(`report: ${reportFile}`);
  lines.push(s.ok ? 'every invariant held' : 'FAILED: at least one invariant was violated or could not be checked');
  return lines.join('\n');
}
