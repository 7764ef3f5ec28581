import { type PolicyError, type PolicyKind, type PolicyObject, type SpokeDiff, checkReferences, diffDesired } from '@flotilla/policy';
import type { DataSource, EntityManager } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import { PolicyObjectEntity } from '../database/entities/policy-object.entity.js';
import type { EnvelopePublisher } from '../desired/envelope-publisher.js';
import { type FleetRenderer, RENDER_LOCK, type StoredRender } from '../desired/fleet-renderer.js';
import { loadRegistry, toPolicyObject } from '../desired/fleet-snapshot.js';
import { DomainError } from '../errors/domain-error.js';
import { ownedByOtherGitSources, ownershipConflict, overrideDetails } from './ownership.js';

export interface PolicyTarget {
  kind: PolicyKind;
  name: string;
}

export interface DeletePolicyCommand {
  targets: PolicyTarget[];
  dryRun: boolean;
  /** Skip targets that do not exist instead of refusing the whole request. */
  ignoreNotFound: boolean;
  /** Delete objects a git source owns (an admin's explicit, audited override). */
  force?: boolean;
  actor: string;
  requestId?: string | null;
}

export interface DeletePolicyResult {
  dryRun: boolean;
  /** Same shape as an apply's objects, so clients render both alike; `source` says who wrote the object last. */
  objects: { kind: string; name: string; action: 'deleted'; source: string }[];
  /** Objects asked for that did not exist (only with ignoreNotFound). */
  notFound: PolicyTarget[];
  spokes: SpokeDiff[];
}

/** One object that would be left pointing at a deleted one. */
export interface Referrer {
  /** `Kind/name` of the object being deleted. */
  target: string;
  /** `Kind/name` of the object that still names it. */
  referrer: string;
  field: string;
}

const key = (kind: string, name: string) => `${kind}/${name}`;

/** The deleted object a dangling reference points at, read from the referrer's own spec. */
function referredTarget(o: PolicyObject, field: string): string | null {
  if (o.kind === 'ModelDeployment') {
    if (field === 'spec.placement') return key('Placement', o.spec.placement);
    if (field.startsWith('spec.model.')) return key('Model', o.spec.model.name);
  }
  if (o.kind === 'FineTuneJob') {
    if (field === 'spec.placement') return key('Placement', o.spec.placement);
    if (field.startsWith('spec.baseModel.')) return key('Model', o.spec.baseModel.name);
    if (field === 'spec.output.model') return key('Model', o.spec.output.model);
  }
  return null;
}

const problemKey = (e: PolicyError) => `${e.object ?? e.file}|${e.path}|${e.message}`;

/**
 * `DELETE /api/v1/policy-objects/{kind}/{name}` and `POST /api/v1/delete`:
 * remove policy objects all or nothing, in one transaction. A delete that
 * would leave another object naming a deleted one (a Placement a
 * ModelDeployment uses, a Model version a job starts from) is refused with
 * 409 naming every referrer, unless the referrers are deleted in the same
 * request; a model the registry still holds keeps its references valid.
 * Like apply, the fleet is rendered once in the same transaction (so the
 * per-spoke answer is what is stored) and the envelopes go out after the commit.
 */
export class DeletePolicy {
  constructor(
    private readonly ds: DataSource,
    private readonly audit: AuditService,
    private readonly renderer: FleetRenderer,
    private readonly envelopes: EnvelopePublisher,
  ) {}

  async execute(cmd: DeletePolicyCommand): Promise<DeletePolicyResult> {
    if (cmd.targets.length === 0) {
      throw new DomainError('validation_failed', 400, 'nothing to delete: name at least one object', { problems: [{ field: '', message: 'no objects named' }] });
    }
    let rendered: StoredRender | null = null;
    const run = async (em: EntityManager) => {
      const { result, render } = await this.run(em, cmd);
      rendered = render;
      return result;
    };
    if (!cmd.dryRun) {
      const result = await this.ds.transaction(run);
      if (rendered) await this.envelopes.publish((rendered as StoredRender).changed, 'changed');
      return result;
    }
    // A dry run runs the same code in a transaction that is always rolled back.
    const qr = this.ds.createQueryRunner();
    await qr.connect();
    await qr.startTransaction();
    try {
      return await run(qr.manager);
    } finally {
      await qr.rollbackTransaction();
      await qr.release();
    }
  }

  private async run(em: EntityManager, cmd: DeletePolicyCommand): Promise<{ result: DeletePolicyResult; render: StoredRender | null }> {
    // The same lock as apply and rendering: the references checked here cannot change before the commit.
    await em.query('SELECT pg_advisory_xact_lock($1)', [RENDER_LOCK]);
    const rows = await em.find(PolicyObjectEntity);
    const existing = new Map(rows.map((r) => [key(r.kind, r.name), r]));

    const wanted = new Map(cmd.targets.map((t) => [key(t.kind, t.name), t]));
    const missing = [...wanted.values()].filter((t) => !existing.has(key(t.kind, t.name)));
    if (missing.length > 0 && !cmd.ignoreNotFound) {
      const names = missing.map((t) => key(t.kind, t.name));
      throw new DomainError('not_found', 404, `${names.join(', ')} ${names.length === 1 ? 'does' : 'do'} not exist; nothing was deleted`, { missing });
    }
    const doomed = [...wanted.keys()].flatMap((k) => {
      const r = existing.get(k);
      return r ? [r] : [];
    });

    // A git source's objects go away by removing them from its repository, unless forced.
    const owned = await ownedByOtherGitSources(em, doomed, 'api');
    if (owned.length > 0 && !cmd.force) throw ownershipConflict(owned, 'delete');

    const registry = await loadRegistry(em);
    const all = rows.map(toPolicyObject);
    const remaining = all.filter((o) => !wanted.has(key(o.kind, o.metadata.name)));
    const referrers = this.danglingReferences(all, remaining, registry);
    if (referrers.length > 0) {
      const byTarget = new Map<string, Referrer[]>();
      for (const r of referrers) byTarget.set(r.target, [...(byTarget.get(r.target) ?? []), r]);
      const parts = [...byTarget].map(([target, rs]) => `${target} is still used by ${rs.map((r) => `${r.referrer} (${r.field})`).join(', ')}`);
      throw new DomainError('still_referenced', 409, `${parts.join('; ')}: delete those in the same request or change them first; nothing was deleted`, { referrers });
    }

    const objects = doomed
      .map((r) => ({ kind: r.kind, name: r.name, action: 'deleted' as const, source: r.source }))
      .sort((a, b) => key(a.kind, a.name).localeCompare(key(b.kind, b.name)));
    for (const r of doomed) {
      await em.delete(PolicyObjectEntity, { id: r.id });
      await this.audit.record(em, {
        actor: cmd.actor,
        action: 'policy.delete',
        target: key(r.kind, r.name),
        before: { labels: r.labels, spec: r.spec },
        after: undefined,
        details: { source: r.source, commit: r.commit, ...overrideDetails(cmd.force === true, r.source, 'api') },
        requestId: cmd.requestId ?? null,
      });
    }
    // Rendered once, from what remains; a dry run computes the same and rolls back.
    const render = doomed.length > 0 ? await this.renderer.renderAndStore(em, { dryRun: cmd.dryRun }) : null;
    const spokes: SpokeDiff[] = render ? diffDesired(render.before, render.after) : [];
    return { result: { dryRun: cmd.dryRun, objects, notFound: missing, spokes }, render };
  }

  /** Reference problems the delete would create: those of the remaining objects that the whole set did not have. */
  private danglingReferences(all: PolicyObject[], remaining: PolicyObject[], registry: Awaited<ReturnType<typeof loadRegistry>>): Referrer[] {
    const before = new Set(checkReferences(all, registry).map(problemKey));
    const byKey = new Map(remaining.map((o) => [key(o.kind, o.metadata.name), o]));
    const out: Referrer[] = [];
    for (const e of checkReferences(remaining, registry)) {
      if (before.has(problemKey(e)) || !e.object) continue;
      const referrer = byKey.get(e.object);
      const target = referrer ? referredTarget(referrer, e.path) : null;
      if (target) out.push({ target, referrer: e.object, field: e.path });
    }
    return out;
  }
}
