import { POLICY_LIMITS, type PolicyError, type PolicyObject, type SpokeDiff, checkReferences, diffDesired, parsePolicyDocuments } from '@flotilla/policy';
import type { DataSource, EntityManager } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import { digestOf } from '../common/digest.js';
import { PolicyObjectEntity } from '../database/entities/policy-object.entity.js';
import type { EnvelopePublisher } from '../desired/envelope-publisher.js';
import { type FleetRenderer, RENDER_LOCK, type StoredRender } from '../desired/fleet-renderer.js';
import { loadRegistry, toPolicyObject } from '../desired/fleet-snapshot.js';
import { DomainError } from '../errors/domain-error.js';
import type { RegisterModelVersion } from '../models/register-model-version.js';
import { ownedByOtherGitSources, ownershipConflict, overrideDetails } from './ownership.js';

export interface ApplyRequest {
  /** Files of YAML (or JSON) documents, as sent or read from git. */
  files: { file: string; text: string }[];
  dryRun: boolean;
  /** Delete objects of `source` that the request does not contain. */
  prune: boolean;
  /** Recorded on every object written; prune works per source. */
  source: string;
  commit?: string | null;
  /** Change objects that another git source owns (an admin's explicit, audited override). */
  force?: boolean;
  actor: string;
  requestId?: string | null;
  /**
   * Runs inside the apply's transaction after the objects are written (never
   * on dry runs), so bookkeeping such as a git source's last commit lands
   * atomically with the objects; throwing rolls the whole apply back.
   */
  onWritten?: (em: EntityManager, result: ApplyResult) => Promise<void>;
}

export type ObjectAction = 'created' | 'updated' | 'unchanged' | 'deleted';

export interface ApplyResult {
  dryRun: boolean;
  objects: { kind: string; name: string; action: ObjectAction }[];
  spokes: SpokeDiff[];
}

/** Objects are identified by kind and name. */
const key = (kind: string, name: string) => `${kind}/${name}`;

/** Says that only the first POLICY_LIMITS.errors problems are listed, when there are more. */
export function shownOf(total: number): string {
  return total > POLICY_LIMITS.errors ? ` (the first ${POLICY_LIMITS.errors} of ${total} are listed)` : '';
}

/** At most POLICY_LIMITS.errors problems go into an answer. */
export function policyErrorDetails(errors: PolicyError[]) {
  return errors.slice(0, POLICY_LIMITS.errors).map((e) => ({ file: e.file, line: e.line, column: e.column, field: e.path, message: e.message }));
}

/**
 * The apply use case, for `POST /api/v1/apply` and git sync: parse, register
 * the versions Model documents declare (the one registry: a version that
 * exists with another digest is a 409), check references against the
 * resulting whole (existing objects + applied − pruned), write the objects,
 * and render the fleet once, in the same transaction, so the per-spoke diff
 * shown is exactly what is stored. Envelopes go out after the commit. All or
 * nothing; a dry run does the same and rolls back.
 */
export class ApplyPolicy {
  constructor(
    private readonly ds: DataSource,
    private readonly audit: AuditService,
    private readonly renderer: FleetRenderer,
    private readonly envelopes: EnvelopePublisher,
    private readonly registerVersion: RegisterModelVersion,
  ) {}

  async apply(req: ApplyRequest): Promise<ApplyResult> {
    const parsed = parsePolicyDocuments(req.files);
    if (parsed.errorCount > 0) {
      throw new DomainError('invalid_policy', 400, `policy has ${parsed.errorCount} error(s): ${parsed.errors.slice(0, 5).map((e) => `${e.file}:${e.line}:${e.column} ${e.path ? e.path + ': ' : ''}${e.message}`).join('; ')}${shownOf(parsed.errorCount)}`, {
        problems: policyErrorDetails(parsed.errors),
        problemCount: parsed.errorCount,
      });
    }
    const run = async (em: EntityManager): Promise<ApplyResult> => {
      await em.query('SELECT pg_advisory_xact_lock($1)', [RENDER_LOCK]);
      const rows = await em.find(PolicyObjectEntity);
      const existing = new Map(rows.map((r) => [key(r.kind, r.name), r]));
      const incoming = new Map(parsed.objects.map((o) => [key(o.kind, o.metadata.name), o]));

      const actions: ApplyResult['objects'] = [];
      const next = new Map<string, PolicyObject>(rows.map((r) => [key(r.kind, r.name), toPolicyObject(r)]));
      for (const [k, o] of incoming) {
        const old = existing.get(k);
        const same = old && digestOf(specOf(o)) === digestOf({ labels: old.labels ?? {}, spec: old.spec });
        actions.push({ kind: o.kind, name: o.metadata.name, action: !old ? 'created' : same ? 'unchanged' : 'updated' });
        next.set(k, o);
      }
      // What a git source owns changes only through that source, unless forced.
      const owned = await ownedByOtherGitSources(em, [...incoming.keys()].flatMap((k) => existing.get(k) ?? []), req.source);
      if (owned.length > 0 && !req.force) throw ownershipConflict(owned, 'change');
      if (req.prune) {
        for (const [k, r] of existing) {
          if (r.source === req.source && !incoming.has(k)) {
            actions.push({ kind: r.kind, name: r.name, action: 'deleted' });
            next.delete(k);
          }
        }
      }
      // Model documents feed the registry itself: one place where versions live, immutable.
      for (const o of incoming.values()) {
        if (o.kind !== 'Model') continue;
        for (const v of o.spec.versions) {
          await this.registerVersion.execute(
            em,
            { model: o.metadata.name, version: v.version, digest: v.digest, uri: v.uri, format: v.format, sizeBytes: v.sizeBytes },
            { actor: req.actor, source: req.source, requestId: req.requestId ?? null, createModel: { task: o.spec.task ?? null } },
          );
        }
      }
      const registry = await loadRegistry(em);
      const all = [...next.values()];
      const problems = checkReferences(all, registry, parsed.sourceMap);
      if (problems.length > 0) {
        throw new DomainError('invalid_policy', 400, `policy refers to things that do not exist: ${problems.slice(0, 5).map((e) => `${e.file}:${e.line} ${e.path}: ${e.message}`).join('; ')}${shownOf(problems.length)}`, {
          problems: policyErrorDetails(problems),
          problemCount: problems.length,
        });
      }
      actions.sort((a, b) => key(a.kind, a.name).localeCompare(key(b.kind, b.name)));

      for (const a of actions) {
        const k = key(a.kind, a.name);
        const old = existing.get(k);
        const o = incoming.get(k);
        if (a.action === 'deleted' && old) {
          await em.delete(PolicyObjectEntity, { id: old.id });
        } else if (a.action === 'created' && o) {
          await em.insert(PolicyObjectEntity, { kind: o.kind, name: o.metadata.name, labels: o.metadata.labels ?? {}, spec: o.spec as never, source: req.source, commit: req.commit ?? null, generation: 1 });
        } else if (o && old) {
          await em.update(
            PolicyObjectEntity,
            { id: old.id },
            {
              labels: o.metadata.labels ?? {},
              spec: o.spec as never,
              source: req.source,
              commit: req.commit ?? null,
              generation: a.action === 'updated' ? old.generation + 1 : old.generation,
            },
          );
        }
        if (a.action !== 'unchanged') {
          await this.audit.record(em, {
            actor: req.actor,
            action: `policy.${a.action === 'created' ? 'create' : a.action === 'updated' ? 'update' : 'delete'}`,
            target: `${a.kind}/${a.name}`,
            before: old ? { labels: old.labels, spec: old.spec } : undefined,
            after: o ? specOf(o) : undefined,
            details: { source: req.source, commit: req.commit ?? null, ...overrideDetails(req.force === true, old?.source, req.source) },
            requestId: req.requestId ?? null,
          });
        }
      }
      // Rendered once, from what was just written; a dry run does the same and rolls back.
      rendered = await this.renderer.renderAndStore(em, { dryRun: req.dryRun });
      const result: ApplyResult = { dryRun: req.dryRun, objects: actions, spokes: diffDesired(rendered.before, rendered.after) };
      if (!req.dryRun) await req.onWritten?.(em, result);
      return result;
    };
    let rendered: StoredRender | null = null;
    if (req.dryRun) {
      // Run in a transaction that is always rolled back, so a dry run touches nothing.
      let result: ApplyResult | undefined;
      const qr = this.ds.createQueryRunner();
      await qr.connect();
      await qr.startTransaction();
      try {
        result = await run(qr.manager);
      } finally {
        await qr.rollbackTransaction();
        await qr.release();
      }
      return result;
    }
    const result = await this.ds.transaction(run);
    if (rendered) await this.envelopes.publish((rendered as StoredRender).changed, 'changed');
    return result;
  }
}

function specOf(o: PolicyObject): { labels: Record<string, string>; spec: unknown } {
  return { labels: o.metadata.labels ?? {}, spec: o.spec };
}
