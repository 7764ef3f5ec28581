import { type LogLine, readLogLines, readStoredEnvelope } from '../agent-files.js';
import { type CheckContext, type InvariantResult, type Violation, result } from './invariant.js';

/**
 * (2) No envelope applied twice. The agent logs one JSON line per envelope
 * it takes ("applied desired state", with its `generation`; "accepted
 * desired state" is taken too, should the agent come to name it so). Per
 * spoke, across every restart of its agent, a generation may appear once,
 * and generations only rise: a repeat is an envelope applied twice, a lower
 * one after a higher one is an older state applied over a newer one.
 */

const APPLY_MESSAGES = new Set(['applied desired state', 'accepted desired state']);

export async function checkAppliedOnce(ctx: CheckContext): Promise<InvariantResult> {
  const violations: Violation[] = [];
  let unverifiable = false;
  const perSpoke: Record<string, number> = {};
  for (const agent of ctx.system.agents.values()) {
    const lines = (await readLogLines(agent.logFile)).filter((l) => APPLY_MESSAGES.has(l.msg) && typeof l.fields.generation === 'number');
    perSpoke[agent.name] = lines.length;
    const stored = await readStoredEnvelope(agent.stateDir).catch(() => null);
    if (lines.length === 0) {
      if (stored && stored.generation > 0) {
        unverifiable = true;
        violations.push({
          message: `${agent.name}: stored generation ${stored.generation}, yet its log (${agent.logFile}) has no "applied desired state" line with a generation, so applies cannot be counted`,
        });
      }
      continue;
    }
    const seen = new Map<number, LogLine[]>();
    let highest: LogLine | null = null;
    for (const l of lines) {
      const g = l.fields.generation as number;
      seen.set(g, [...(seen.get(g) ?? []), l]);
      if (highest && g < (highest.fields.generation as number)) {
        violations.push({
          message: `${agent.name} applied generation ${g} after generation ${highest.fields.generation as number}`,
          evidence: { earlier: brief(highest), later: brief(l) },
        });
      }
      if (!highest || g > (highest.fields.generation as number)) highest = l;
    }
    for (const [g, ls] of seen) {
      if (ls.length > 1) violations.push({ message: `${agent.name} applied generation ${g} ${ls.length} times`, evidence: ls.map(brief) });
    }
  }
  return result(violations, { applyLinesPerSpoke: perSpoke }, unverifiable && violations.every((v) => v.evidence === undefined));
}

const brief = (l: LogLine) => ({ line: l.line, time: l.time === null ? null : new Date(l.time).toISOString(), pid: l.pid, generation: l.fields.generation, from: l.fields.from });
