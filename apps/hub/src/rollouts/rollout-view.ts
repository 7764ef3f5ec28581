import type { RolloutView } from '@flotilla/contracts';
import type { ModelDeployment } from '@flotilla/policy';
import type { EntityManager } from 'typeorm';
import { PolicyObjectEntity } from '../database/entities/policy-object.entity.js';
import { toPolicyObject } from '../desired/fleet-snapshot.js';
import { SPOKE_ROLLOUT_STATES, type RolloutSettings, settingsOf } from './rollout-plan.js';
import type { RolloutRow, RolloutSpokeRow, RolloutStore } from './rollout-store.js';

/** The one mapping from the rollout tables to the API's answer (rollouts and deployments routes). */
export function toRolloutView(r: RolloutRow, spokes: readonly RolloutSpokeRow[], settings: RolloutSettings | null): RolloutView {
  const waveStartedAt = new Date(r.waveStartedAt);
  const counts: Record<string, number> = Object.fromEntries(SPOKE_ROLLOUT_STATES.map((s) => [s, 0]));
  for (const s of spokes) counts[s.state] = (counts[s.state] ?? 0) + 1;
  return {
    deployment: r.deployment,
    id: r.id,
    phase: r.phase === 'Progressing' && r.paused ? 'Paused' : r.phase,
    rollingBack: r.rollingBack,
    fromVersion: r.fromVersion,
    toVersion: r.toVersion,
    wave: Math.min(r.wave, Math.max(0, r.waves - 1)) + 1,
    waves: r.waves,
    waveStartedAt: waveStartedAt.toISOString(),
    waveDeadline: new Date(waveStartedAt.getTime() + (settings?.progressDeadlineSeconds ?? 0) * 1000).toISOString(),
    startedAt: new Date(r.startedAt).toISOString(),
    finishedAt: r.finishedAt ? new Date(r.finishedAt).toISOString() : null,
    message: r.message,
    settings: settings
      ? {
          strategy: settings.strategy,
          maxConcurrency: settings.maxConcurrency,
          minSuccessSeconds: settings.minSuccessSeconds,
          progressDeadlineSeconds: settings.progressDeadlineSeconds,
          maxFailures: settings.maxFailures,
          gates: settings.gates,
        }
      : null,
    counts,
    spokes: spokes.map((s) => ({
      spoke: s.spoke,
      wave: s.wave + 1,
      state: s.state,
      failed: s.failed,
      reason: s.reason,
      message: s.message,
      // Why a failed spoke failed stays visible while it rolls back.
      gates: s.failedGates ?? s.gates,
      targetGeneration: s.targetGeneration,
    })),
  };
}

/** Reads one deployment's rollout for the API; null when it has none. */
export async function loadRolloutView(em: EntityManager, store: RolloutStore, deployment: string): Promise<RolloutView | null> {
  const r = await store.one(em, deployment);
  if (!r) return null;
  const policy = await em.findOne(PolicyObjectEntity, { where: { kind: 'ModelDeployment', name: deployment } });
  const settings = policy ? settingsOf((toPolicyObject(policy) as ModelDeployment).spec.rollout) : null;
  return toRolloutView(r, await store.spokes(em, deployment), settings);
}
