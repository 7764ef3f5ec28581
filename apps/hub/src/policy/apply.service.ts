import { type DesiredPayload } from '@flotilla/contracts';
import {
  type PolicyError,
  type PolicyObject,
  type SpokeDiff,
  checkReferences,
  diffDesired,
  parsePolicyDocuments,
  renderDesired,
} from '@flotilla/policy';
import type { DataSource, EntityManager } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import { digestOf } from '../common/digest.js';
import { DesiredStateEntity } from '../database/entities/desired-state.entity.js';
import { PolicyObjectEntity } from '../database/entities/policy-object.entity.js';
import { RENDER_LOCK } from '../desired/desired-state.service.js';
import { loadRegistry, loadSpokes, toPolicyObject } from '../desired/fleet-snapshot.js';
import { DomainError } from '../errors/domain-error.js';

export interface ApplyRequest {
  /** Files of YAML (or JSON) documents, as sent or read from git. */
  files: { file: string; text: string }[];
  dryRun: boolean;
  /** Delete objects of `source` that the request does not contain. */
  prune: boolean;
  /** Recorded on every object written; prune works per source. */
  source: string;
  commit?: string | null;
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

export function policyErrorDetails(errors: PolicyError[]) {
  return errors.map((e) => ({ file: e.file, line: e.line, column: e.column, field: e.path, message: e.message }));
}

/**
 * `POST /api/v1/apply` and git sync: parse, check references against the
 * resulting whole (existing objects + applied − pruned), compute what every
 * spoke would gain, lose or change, and — unless a dry run — write it all in
 * one transaction. All or nothing.
 */
export class ApplyService {
  constructor(
    private readonly ds: DataSource,
    private readonly audit: AuditService,
    private readonly telemetryIntervalSeconds: number,
  ) {}

  async apply(req: ApplyRequest): Promise<ApplyResult> {
    const parsed = parsePolicyDocuments(req.files);
    if (parsed.errors.length > 0) {
      throw new DomainError('invalid_policy', 400, `policy has ${parsed.errors.length} error(s): ${parsed.errors.map((e) => `${e.file}:${e.line}:${e.column} ${e.path ? e.path + ': ' : ''}${e.message}`).slice(0, 5).join('; ')}`, {
        problems: policyErrorDetails(parsed.errors),
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
      if (req.prune) {
        for (const [k, r] of existing) {
          if (r.source === req.source && !incoming.has(k)) {
            actions.push({ kind: r.kind, name: r.name, action: 'deleted' });
            next.delete(k);
          }
        }
      }
      const registry = await loadRegistry(em);
      const all = [...next.values()];
      const problems = checkReferences(all, registry, parsed.sourceMap);
      if (problems.length > 0) {
        throw new DomainError('invalid_policy', 400, `policy refers to things that do not exist: ${problems.map((e) => `${e.file}:${e.line} ${e.path}: ${e.message}`).slice(0, 5).join('; ')}`, {
          problems: policyErrorDetails(problems),
        });
      }
      const spokes = await loadSpokes(em, this.telemetryIntervalSeconds);
      const after = renderDesired(
        all,
        spokes.map((s) => s.view),
        { telemetryIntervalSeconds: this.telemetryIntervalSeconds, registry },
      );
      const names = new Map(spokes.map((s) => [s.id, s.view.name]));
      const stored = await em.find(DesiredStateEntity, { select: { spokeId: true, payload: true } });
      const before = new Map<string, DesiredPayload>();
      for (const d of stored) {
        const n = names.get(d.spokeId);
        if (n) before.set(n, d.payload);
      }
      // Spokes with no stored state yet are compared with an empty payload.
      for (const [n, p] of after) if (!before.has(n)) before.set(n, { settings: p.settings, deployments: [], fineTuneJobs: [] });
      const spokeDiffs = diffDesired(before, after);
      actions.sort((a, b) => key(a.kind, a.name).localeCompare(key(b.kind, b.name)));
      if (req.dryRun) return { dryRun: true, objects: actions, spokes: spokeDiffs };

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
            details: { source: req.source, commit: req.commit ?? null },
            requestId: req.requestId ?? null,
          });
        }
      }
      const result: ApplyResult = { dryRun: false, objects: actions, spokes: spokeDiffs };
      await req.onWritten?.(em, result);
      return result;
    };
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
    return this.ds.transaction(run);
  }
}

function specOf(o: PolicyObject): { labels: Record<string, string>; spec: unknown } {
  return { labels: o.metadata.labels ?? {}, spec: o.spec };
}
