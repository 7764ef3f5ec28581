import type { GateReading } from '../rollouts/rollout-plan.js';
import { isActive, type PromotionRow, type PromotionState } from './promotion-store.js';

/** A promotion as the API shows it (deployments, fine-tune jobs, the promote call). */
export interface PromotionView {
  deployment: string;
  spoke: string;
  model: string;
  version: string;
  previousVersion: string | null;
  job: string;
  jobGeneration: number;
  state: PromotionState;
  /** True while the spoke is sent the produced version (Progressing, Verifying, Promoted). */
  active: boolean;
  reason: string;
  message: string;
  actor: string;
  gates: GateReading[];
  targetGeneration: number | null;
  since: string;
  updatedAt: string;
}

export function toPromotionView(r: PromotionRow): PromotionView {
  return {
    deployment: r.deployment,
    spoke: r.spoke,
    model: r.model,
    version: r.version,
    previousVersion: r.previousVersion,
    job: r.job,
    jobGeneration: r.jobGeneration,
    state: r.state,
    active: isActive(r.state),
    reason: r.reason,
    message: r.message,
    actor: r.actor,
    gates: r.gates,
    targetGeneration: r.targetGeneration,
    since: new Date(r.createdAt).toISOString(),
    updatedAt: new Date(r.updatedAt).toISOString(),
  };
}
