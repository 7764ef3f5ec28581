import type { PolicyObjectEntity } from '../database/entities/policy-object.entity.js';

/** A stored policy object as the API shows it: the object, who wrote it last, and its generation. */
export function toPolicyObjectDto(r: PolicyObjectEntity) {
  return {
    kind: r.kind,
    name: r.name,
    labels: r.labels ?? {},
    spec: r.spec,
    /** `api:<token>` or `git:<source>`. */
    source: r.source,
    commit: r.commit,
    generation: r.generation,
    /** Stalled=True (with the missing placement or model version) when the last render could not render it. */
    conditions: r.conditions ?? [],
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
  };
}
