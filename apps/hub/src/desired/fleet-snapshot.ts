import { PolicyObjectSchema, type PolicyObject, type RegisteredModel, type SpokeView } from '@flotilla/policy';
import type { EntityManager } from 'typeorm';
import { ModelVersionEntity } from '../database/entities/model-version.entity.js';
import { ModelEntity } from '../database/entities/model.entity.js';
import { PolicyObjectEntity } from '../database/entities/policy-object.entity.js';
import { SpokeEntity } from '../database/entities/spoke.entity.js';
import { connectionOf } from '../spokes/spoke.dto.js';

/** Rows of policy_objects back into the typed objects libs/policy works on. */
export function toPolicyObject(row: Pick<PolicyObjectEntity, 'kind' | 'name' | 'labels' | 'spec'>): PolicyObject {
  return PolicyObjectSchema.parse({
    apiVersion: 'flotilla.dev/v1',
    kind: row.kind,
    metadata: Object.keys(row.labels ?? {}).length ? { name: row.name, labels: row.labels } : { name: row.name },
    spec: row.spec,
  });
}

export async function loadPolicyObjects(em: EntityManager): Promise<PolicyObject[]> {
  const rows = await em.find(PolicyObjectEntity, { order: { kind: 'ASC', name: 'ASC' } });
  return rows.map(toPolicyObject);
}

export async function loadRegistry(em: EntityManager): Promise<RegisteredModel[]> {
  // Sequential: a transaction's manager is one connection.
  const models = await em.find(ModelEntity);
  const versions = await em.find(ModelVersionEntity);
  const byId = new Map(models.map((m) => [m.id, { name: m.name, versions: [] as RegisteredModel['versions'][number][] }]));
  for (const v of versions) {
    byId.get(v.modelId)?.versions.push({
      version: v.version,
      uri: v.uri,
      digest: v.digest,
      format: v.format as RegisteredModel['versions'][number]['format'],
      ...(v.sizeBytes !== null ? { sizeBytes: Number(v.sizeBytes) } : {}),
    });
  }
  return [...byId.values()];
}

export interface SpokeRow {
  id: string;
  view: SpokeView;
}

export async function loadSpokes(em: EntityManager, intervalSeconds: number): Promise<SpokeRow[]> {
  const rows = await em
    .getRepository(SpokeEntity)
    .createQueryBuilder('s')
    .select(['s.id', 's.name', 's.labels', 's.capacity', 's.presence', 's.lastSeenAt'])
    .where('s.revoked_at IS NULL')
    .getMany();
  return toSpokeRows(rows, intervalSeconds);
}

/** The named spokes that are enrolled and not revoked (an incremental render's few). */
export async function loadSpokesNamed(em: EntityManager, names: readonly string[], intervalSeconds: number): Promise<SpokeRow[]> {
  if (names.length === 0) return [];
  const rows = await em
    .getRepository(SpokeEntity)
    .createQueryBuilder('s')
    .select(['s.id', 's.name', 's.labels', 's.capacity', 's.presence', 's.lastSeenAt'])
    .where('s.revoked_at IS NULL AND s.name = ANY(:names)', { names: [...names] })
    .getMany();
  return toSpokeRows(rows, intervalSeconds);
}

function toSpokeRows(rows: readonly SpokeEntity[], intervalSeconds: number): SpokeRow[] {
  const now = Date.now();
  return rows.map((s) => ({
    id: s.id,
    view: {
      name: s.name,
      labels: s.labels,
      ...(s.capacity ? { capacity: s.capacity } : {}),
      connection: connectionOf(s, now, intervalSeconds),
    },
  }));
}
