import { randomUUID } from 'node:crypto';
import { type DesiredDeployment, canonicalHash, canonicalJson } from '@flotilla/contracts';
import type { ModelDeployment } from '@flotilla/policy';
import type { EntityManager } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import type { DeploymentOverrideSource, DeploymentOverrides, RenderContext } from '../desired/spoke-version-decisions.js';
import { planWaves, servesTarget, settingsOf } from './rollout-plan.js';
import type { RolloutStore } from './rollout-store.js';

export const ROLLOUT_ACTOR = 'system:rollout-controller';

export const revisionHash = (d: DesiredDeployment): string => canonicalHash(canonicalJson(d));

/**
 * The rollout side of rendering. For each ModelDeployment with
 * `strategy: Progressive` whose rendering changed on spokes that already run
 * it, it starts a rollout (superseding any running one) in the render's own
 * transaction, with each spoke's previous rendering kept as a revision; and
 * for every spoke a rollout has not (or no longer) moved to the new revision,
 * it overrides the policy's rendering with that previous one. What moves a
 * spoke from one to the other is the RolloutReconciler, which changes the
 * spoke's row and renders again.
 */
export class RolloutRevisions implements DeploymentOverrideSource {
  readonly name = 'rollouts';

  constructor(
    private readonly store: RolloutStore,
    private readonly audit: AuditService,
  ) {}

  async decide(em: EntityManager, ctx: RenderContext): Promise<DeploymentOverrides> {
    const overrides: DeploymentOverrides = new Map();
    const rollouts = new Map((await this.store.all(em)).map((r) => [r.deployment, r]));
    const deployments = ctx.objects.filter((o): o is ModelDeployment => o.kind === 'ModelDeployment');
    const labels = new Map(ctx.spokes.map((s) => [s.name, s.labels]));

    for (const name of [...rollouts.keys()]) {
      if (!deployments.some((d) => d.metadata.name === name)) {
        await this.store.delete(em, name);
        rollouts.delete(name);
      }
    }
    for (const d of deployments) {
      const name = d.metadata.name;
      if (ctx.render.stalled.has(`ModelDeployment/${name}`)) continue; // its spokes keep what they had anyway
      if (ctx.scope) {
        // A few spokes changed, the policy did not: no rollout starts or ends; a spoke of the scope that left the placement leaves the rollout.
        if (!rollouts.has(name)) continue;
        const placed = new Set(ctx.render.decisions.get(d.spec.placement)?.selected ?? []);
        const scope = ctx.scope;
        const gone = (await this.store.spokes(em, name)).filter((r) => scope.has(r.spoke) && !placed.has(r.spoke)).map((r) => r.spoke);
        await this.store.removeSpokes(em, name, gone);
        continue;
      }
      const selected = ctx.render.decisions.get(d.spec.placement)?.selected ?? [];
      const target = selected.map((s) => ctx.render.payloads.get(s)?.deployments.find((x) => x.name === name)).find((x) => x !== undefined);
      const existing = rollouts.get(name) ?? null;
      const settings = settingsOf(d.spec.rollout);
      if (!target || settings.strategy === 'AllAtOnce') {
        if (existing) await this.end(em, existing.deployment, existing.phase, !target ? 'no spoke is placed any more' : 'strategy is now AllAtOnce');
        continue;
      }
      const toHash = revisionHash(target);
      if (existing?.toHash === toHash) {
        // A spoke that left the placement (or the fleet) leaves the rollout: it no longer runs the deployment.
        const placed = new Set(selected);
        const gone = (await this.store.spokes(em, name)).filter((r) => !placed.has(r.spoke)).map((r) => r.spoke);
        await this.store.removeSpokes(em, name, gone);
        continue;
      }

      // A change: the spokes that run another rendering of this deployment now move, in waves.
      const revisions: Record<string, DesiredDeployment> = { [toHash]: target };
      const moving: { name: string; labels: Record<string, string>; fromHash: string; version: string }[] = [];
      for (const spoke of selected) {
        const before = ctx.previous.get(spoke)?.deployments.find((x) => x.name === name);
        if (!before) continue; // new here: nothing to roll back to
        const fromHash = revisionHash(before);
        if (fromHash === toHash) continue;
        revisions[fromHash] = before;
        moving.push({ name: spoke, labels: labels.get(spoke) ?? {}, fromHash, version: before.model.version });
      }
      if (existing) await this.end(em, name, existing.phase, `superseded by a change to ${target.model.name} ${target.model.version}`);
      if (moving.length === 0) continue;
      const waves = planWaves(moving, settings);
      const waveOf = new Map(waves.flatMap((w, i) => w.map((s) => [s, i] as const)));
      const ordered = waves.flat();
      const versions = new Map<string, number>();
      for (const m of moving) versions.set(m.version, (versions.get(m.version) ?? 0) + 1);
      const fromVersion = [...versions].sort((a, b) => b[1] - a[1])[0]?.[0] ?? null;
      const byName = new Map(moving.map((m) => [m.name, m]));
      const id = randomUUID();
      await this.store.create(
        em,
        {
          deployment: name,
          id,
          phase: 'Progressing',
          paused: false,
          rollingBack: false,
          fromVersion,
          toVersion: target.model.version,
          toHash,
          revisions,
          wave: 0,
          waves: waves.length,
          message: `wave 1 of ${waves.length} starting`,
        },
        ordered.map((spoke, position) => ({
          spoke,
          position,
          wave: waveOf.get(spoke) ?? 0,
          fromHash: byName.get(spoke)?.fromHash ?? '',
          state: 'Pending',
          failed: false,
          reason: 'WaveNotStarted',
          message: '',
          gates: [],
          failedGates: null,
          baseline: null,
          targetGeneration: null,
          stepStartedAt: null,
          readyAt: null,
        })),
      );
      await this.audit.record(em, {
        actor: ROLLOUT_ACTOR,
        action: 'rollout.started',
        target: `ModelDeployment/${name}`,
        after: { id, toHash },
        details: { rollout: id, fromVersion, toVersion: target.model.version, spokes: ordered.length, waves: waves.map((w) => w.length) },
      });
    }

    // Spokes a rollout holds on their previous revision.
    const rowsByDeployment = groupBy(await this.store.allSpokes(em));
    for (const r of await this.store.all(em)) {
      for (const row of rowsByDeployment.get(r.deployment) ?? []) {
        if (servesTarget(row.state as never)) continue;
        const revision = r.revisions[row.fromHash];
        if (!revision) continue;
        let m = overrides.get(row.spoke);
        if (!m) overrides.set(row.spoke, (m = new Map()));
        m.set(r.deployment, revision);
      }
    }
    return overrides;
  }

  /** A rollout that a change or the policy ended: gone, audited. Spokes then get what the policy says. */
  private async end(em: EntityManager, deployment: string, phase: string, why: string): Promise<void> {
    await this.store.delete(em, deployment);
    await this.audit.record(em, { actor: ROLLOUT_ACTOR, action: 'rollout.superseded', target: `ModelDeployment/${deployment}`, details: { phase, message: why } });
  }
}

function groupBy<T extends { deployment: string }>(rows: readonly T[]): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const r of rows) {
    const list = m.get(r.deployment);
    if (list) list.push(r);
    else m.set(r.deployment, [r]);
  }
  return m;
}
