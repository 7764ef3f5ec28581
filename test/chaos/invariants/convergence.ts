import { readStoredEnvelope } from '../agent-files.js';
import { type CheckContext, type InvariantResult, type Violation, result, sameDeployments, sleep } from './invariant.js';

/**
 * (1) Every spoke that was not revoked reaches observedGeneration ==
 * desiredGeneration (and acceptedGeneration, where the hub reports it)
 * within the bound after the system was whole again. Not taken on the hub's
 * word alone: the generation the agent stored must be that desired
 * generation, and what it holds must be what the last committed changes ask
 * for (a hub that stopped rendering would otherwise look converged).
 */

interface SpokeRow {
  name: string;
  connection?: string;
  desiredGeneration?: number;
  acceptedGeneration?: number;
  observedGeneration?: number;
}

const inSync = (s: SpokeRow) =>
  typeof s.desiredGeneration === 'number' &&
  s.desiredGeneration > 0 &&
  s.observedGeneration === s.desiredGeneration &&
  (s.acceptedGeneration === undefined || s.acceptedGeneration === s.desiredGeneration);

export async function checkConvergence(ctx: CheckContext): Promise<InvariantResult> {
  const { driver, system, api } = ctx;
  const expected = driver.spokes.filter((s) => !driver.intent.revoked.includes(s) && !driver.intent.undecided.includes(`revocation of ${s}`));
  const deadline = ctx.recoveredAt + ctx.convergeMs;
  let rows: SpokeRow[] | null = null;
  let convergedAt: number | null = null;
  for (;;) {
    const all = await api.readAll<SpokeRow>('/api/v1/spokes');
    if (all) {
      rows = all;
      const byName = new Map(all.map((s) => [s.name, s]));
      if (expected.every((n) => byName.has(n) && inSync(byName.get(n)!))) {
        convergedAt = Date.now();
        break;
      }
    }
    if (Date.now() > deadline) break;
    await sleep(500);
  }
  const boundSeconds = ctx.convergeMs / 1000;
  const violations: Violation[] = [];
  if (!rows) {
    return result(
      [{ message: `GET /api/v1/spokes never succeeded within ${boundSeconds} s of the last restart (last: ${api.lastFailure})`, evidence: { hubExits: system.hub?.exits.slice(-3), hubLogTail: system.hub?.logTail(2500) } }],
      undefined,
      false,
    );
  }
  const byName = new Map(rows.map((s) => [s.name, s]));
  const perSpoke: Record<string, unknown> = {};
  for (const name of expected) {
    const row = byName.get(name);
    const agent = system.agents.get(name)!;
    const stored = await readStoredEnvelope(agent.stateDir).catch((err: Error) => err);
    const wanted = driver.intendedDeployments(name);
    const facts = {
      hub: row ? { connection: row.connection, desiredGeneration: row.desiredGeneration, acceptedGeneration: row.acceptedGeneration, observedGeneration: row.observedGeneration } : null,
      agentStored: stored instanceof Error ? stored.message : stored,
      agentRunning: agent.process.running,
      intended: wanted,
    };
    perSpoke[name] = facts;
    if (!row) {
      violations.push({ message: `${name} is missing from GET /api/v1/spokes though it was never revoked`, evidence: facts });
      continue;
    }
    if (!inSync(row)) {
      violations.push({
        message: `${name}: desiredGeneration ${row.desiredGeneration}, acceptedGeneration ${row.acceptedGeneration ?? '(not reported)'}, observedGeneration ${row.observedGeneration} at the deadline, ${boundSeconds} s after the last restart`,
        evidence: { ...facts, agentLogTail: agent.process.logTail(1500) },
      });
      continue;
    }
    if (stored instanceof Error || stored === null || stored.generation !== row.desiredGeneration) {
      violations.push({
        message: `${name}: the hub reports generation ${row.observedGeneration} observed, but the agent stored ${stored instanceof Error ? `nothing readable (${stored.message})` : stored === null ? 'no envelope' : `generation ${stored.generation}`}`,
        evidence: facts,
      });
      continue;
    }
    const undecided = driver.intent.undecided.some((u) => u === `spoke ${name}` || u.startsWith('deployment '));
    if (!undecided && !sameDeployments(stored.deployments, wanted)) {
      violations.push({
        message: `${name} is at its desired generation ${stored.generation}, but holds ${stored.deployments.map((d) => `${d.name}@${d.version}`).join(', ') || 'no deployment'} while the last committed changes ask for ${Object.entries(wanted).map(([d, v]) => `${d}@${v}`).join(', ')}`,
        evidence: facts,
      });
    }
  }
  return result(violations, {
    spokes: expected.length,
    boundSeconds,
    convergedAfterRecoveryMs: convergedAt === null ? null : Math.max(0, convergedAt - ctx.recoveredAt),
    perSpoke,
  });
}
