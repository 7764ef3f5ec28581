import type { RolloutView } from '@flotilla/contracts';
import type { DataSource } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import type { Controller } from '../controllers/controller.js';
import { RENDER_LOCK } from '../desired/fleet-renderer.js';
import { conflict, notFound } from '../errors/domain-error.js';
import type { RolloutMetrics } from './rollout-metrics.js';
import { beginRollback } from './rollout.reconciler.js';
import type { RolloutStore } from './rollout-store.js';
import { loadRolloutView } from './rollout-view.js';

export const ROLLOUT_ACTIONS = ['pause', 'resume', 'abort', 'undo'] as const;
export type RolloutAction = (typeof ROLLOUT_ACTIONS)[number];

/**
 * An operator's pause, resume, abort or undo of a deployment's rollout: the
 * stored state changes in one transaction with its audit event, and the
 * rollout controller is told to look (it renders and publishes what changed).
 * pause holds the next wave (spokes already in a wave finish it); resume
 * lets it start; abort rolls back every spoke the rollout moved, gated like
 * the way forward; undo does the same after a rollout succeeded.
 */
export class ControlRollout {
  constructor(
    private readonly ds: DataSource,
    private readonly store: RolloutStore,
    private readonly audit: AuditService,
    private readonly rollouts: Controller,
    private readonly metrics: RolloutMetrics,
  ) {}

  async execute(deployment: string, action: RolloutAction, actor: string, requestId: string | null): Promise<RolloutView> {
    const view = await this.ds.transaction(async (em) => {
      await em.query('SELECT pg_advisory_xact_lock($1)', [RENDER_LOCK]);
      const r = await this.store.one(em, deployment, { lock: true });
      if (!r) throw notFound('rollout', deployment);
      const before = { phase: r.phase, paused: r.paused, rollingBack: r.rollingBack };
      const moving = r.phase === 'Progressing' && !r.rollingBack;
      const refuse = (why: string) => conflict('rollout_state_conflict', `cannot ${action} the rollout of ${deployment}: ${why}`, { phase: r.phase, paused: r.paused, rollingBack: r.rollingBack });
      const now = new Date();
      if (action === 'pause') {
        if (!moving) throw refuse(`it is ${r.rollingBack ? 'rolling back' : r.phase}`);
        if (r.paused) throw refuse('it is already paused');
        await this.store.update(em, deployment, { paused: true, message: `paused by ${actor}; spokes already in wave ${r.wave + 1} finish it, the next wave waits` });
      } else if (action === 'resume') {
        if (!r.paused) throw refuse('it is not paused');
        await this.store.update(em, deployment, { paused: false, message: `resumed by ${actor}` });
      } else {
        if (action === 'abort' && !moving) throw refuse(`it is ${r.rollingBack ? 'already rolling back' : r.phase}`);
        if (action === 'undo' && !(moving || (r.phase === 'Succeeded' && !r.rollingBack))) throw refuse(`it is ${r.rollingBack ? 'already rolling back' : r.phase}`);
        const rows = await this.store.spokes(em, deployment);
        const reason = action === 'abort' ? 'Aborted' : 'Undone';
        const back = beginRollback(rows, reason, `${action} by ${actor}`, now);
        await this.store.saveSpokes(em, back);
        await this.store.update(em, deployment, {
          phase: action === 'abort' ? 'Aborted' : 'RolledBack',
          paused: false,
          rollingBack: true,
          message: `${action === 'abort' ? 'aborted' : 'undone'} by ${actor} in wave ${r.wave + 1} of ${r.waves}; rolling back to ${r.fromVersion ?? 'the previous revision'}`,
        });
        this.metrics.rollbacks.inc({ deployment, cause: action === 'abort' ? 'aborted' : 'undo' });
      }
      const after = await loadRolloutView(em, this.store, deployment);
      await this.audit.record(em, {
        actor,
        action: `rollout.${action}`,
        target: `ModelDeployment/${deployment}`,
        before,
        after: { phase: after?.phase, rollingBack: after?.rollingBack },
        details: { rollout: r.id, wave: r.wave + 1 },
        requestId,
      });
      return after as RolloutView;
    });
    this.rollouts.enqueue(deployment);
    return view;
  }
}
