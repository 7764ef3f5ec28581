import { type LedgerProcess, readLedgerProcesses, readStoredEnvelope } from '../agent-files.js';
import { INSTANCE_ENV, isAlive, trialProcesses } from '../proc-scan.js';
import { type CheckContext, type InvariantResult, type Violation, result, sleep } from './invariant.js';

/**
 * (3) No untracked inference process. Every process on the machine that
 * carries this trial's marker and the process runtime's instance marker (an
 * inference server) must be in its agent's ledger; each agent runs exactly
 * one live, non-draining process per deployment of the envelope it stored,
 * and that process answers for the deployment's model version. A draining
 * process (the old version after a swap) is tolerated until its drain
 * deadline plus the stop grace; after that it has leaked.
 */

/** ProcessRuntime defaults: the old version drains 30 s, then gets up to 30 s to stop. */
const DRAIN_TOLERANCE_MS = 30_000 + 5_000;

async function servesVersion(port: number, model: string, version: string): Promise<{ ok: boolean; detail: string }> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/v2/models/${encodeURIComponent(model)}`, { signal: AbortSignal.timeout(3_000) });
    const body = (await r.json().catch(() => null)) as { versions?: string[] } | null;
    if (!r.ok) return { ok: false, detail: `GET /v2/models/${model} answered ${r.status}` };
    return body?.versions?.includes(version) ? { ok: true, detail: '' } : { ok: false, detail: `serves versions ${JSON.stringify(body?.versions)}, not ${version}` };
  } catch (err) {
    return { ok: false, detail: `no answer on port ${port}: ${(err as Error).message}` };
  }
}

async function evaluate(ctx: CheckContext): Promise<{ violations: Violation[]; measured: Record<string, unknown> }> {
  const violations: Violation[] = [];
  const servers = (await trialProcesses(ctx.trialId)).filter((p) => p.env.has(INSTANCE_ENV));
  const ledgers = new Map<string, LedgerProcess[]>();
  for (const a of ctx.system.agents.values()) ledgers.set(a.name, await readLedgerProcesses(a.stateDir).catch(() => []));
  const tracked = new Map<number, { agent: string; entry: LedgerProcess }>();
  for (const [agent, entries] of ledgers) for (const e of entries) if (e.pid !== null) tracked.set(e.pid, { agent, entry: e });

  for (const p of servers) {
    const t = tracked.get(p.pid);
    const instance = p.env.get(INSTANCE_ENV);
    const owner = [...ctx.system.agents.values()].find((a) => p.cmdline.some((c) => c.includes(`${a.stateDir}/`)))?.name ?? 'unknown agent';
    if (!t) {
      violations.push({ message: `inference server pid ${p.pid} (${owner}) is in no agent's ledger`, evidence: { pid: p.pid, ppid: p.ppid, instance, cmdline: p.cmdline.join(' ') } });
    } else if (t.entry.instanceId !== null && instance !== undefined && t.entry.instanceId !== instance) {
      violations.push({
        message: `inference server pid ${p.pid} carries instance ${instance}, but ${t.agent}'s ledger lists that pid as instance ${t.entry.instanceId}`,
        evidence: { pid: p.pid, entry: t.entry.raw },
      });
    }
  }

  const now = Date.now();
  const perAgent: Record<string, unknown> = {};
  for (const a of ctx.system.agents.values()) {
    const stored = await readStoredEnvelope(a.stateDir).catch(() => null);
    const entries = ledgers.get(a.name) ?? [];
    const live = entries.filter((e) => e.pid !== null && isAlive(e.pid));
    perAgent[a.name] = { desired: stored?.deployments ?? [], ledger: entries.map((e) => ({ pid: e.pid, deployment: e.deployment, version: e.modelVersion, role: e.role, alive: e.pid !== null && isAlive(e.pid) })) };
    const desired = stored?.deployments ?? [];
    for (const d of desired) {
      const serving = live.filter((e) => e.deployment === d.name && e.role !== 'draining');
      if (serving.length !== 1) {
        violations.push({
          message: `${a.name} runs ${serving.length} live non-draining processes for deployment ${d.name} (wants exactly 1, ${d.model}@${d.version})`,
          evidence: { ledger: entries.map((e) => e.raw), agentRunning: a.process.running },
        });
        continue;
      }
      const e = serving[0]!;
      if (e.modelVersion !== null && e.modelVersion !== d.version) {
        violations.push({ message: `${a.name}: ${d.name}'s process (pid ${e.pid}) runs version ${e.modelVersion}, the stored envelope asks for ${d.version}`, evidence: e.raw });
        continue;
      }
      if (e.port !== null) {
        const s = await servesVersion(e.port, d.model, d.version);
        if (!s.ok) violations.push({ message: `${a.name}: ${d.name}'s process (pid ${e.pid}) does not serve ${d.model}@${d.version}: ${s.detail}`, evidence: e.raw });
      }
    }
    const wanted = new Set(desired.map((d) => d.name));
    for (const e of live) {
      if (e.role === 'draining') {
        if (e.drainUntil !== null && now > e.drainUntil + DRAIN_TOLERANCE_MS) {
          violations.push({ message: `${a.name}: draining process pid ${e.pid} (${e.deployment}@${e.modelVersion}) still runs ${Math.round((now - e.drainUntil) / 1000)} s after its drain deadline`, evidence: e.raw });
        }
      } else if (e.deployment === null || !wanted.has(e.deployment)) {
        violations.push({ message: `${a.name}: process pid ${e.pid} serves ${e.deployment}, which its stored envelope no longer asks for`, evidence: e.raw });
      }
    }
  }
  return { violations, measured: { inferenceServers: servers.length, perAgent } };
}

export async function checkTrackedProcesses(ctx: CheckContext): Promise<InvariantResult> {
  // A process is untracked for a moment between spawn and ledger write; only what lasts to the bound counts.
  const deadline = Math.max(ctx.recoveredAt + ctx.convergeMs, Date.now() + 10_000);
  for (;;) {
    const { violations, measured } = await evaluate(ctx);
    if (violations.length === 0 || Date.now() > deadline) return result(violations, measured);
    await sleep(1_000);
  }
}
