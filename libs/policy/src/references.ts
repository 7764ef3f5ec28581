import { type ModelRef } from '@flotilla/contracts';
import { formatPath, type PolicyError, type PolicySourceMap } from './documents.js';
import { type ModelVersion, type PolicyKind, type PolicyObject } from './schemas.js';

/**
 * Cross-object checks: every placement and model version an object names must
 * exist, either among the policy objects or in the hub's model registry (CI
 * registers versions through the API, so a deployment may name a version no
 * YAML file lists).
 */

/** A model as the hub's registry knows it (`GET /api/v1/models`). */
export interface RegisteredModel {
  name: string;
  versions: readonly ModelVersion[];
}

/** Every known model version, by model name then version. */
export type ModelIndex = ReadonlyMap<string, ReadonlyMap<string, ModelRef>>;

interface Conflict {
  model: string;
  versionIndex: number;
  message: string;
}

function indexModels(
  objects: readonly PolicyObject[],
  registry: readonly RegisteredModel[],
): { index: ModelIndex; conflicts: Conflict[] } {
  const index = new Map<string, Map<string, ModelRef>>();
  const conflicts: Conflict[] = [];
  const add = (name: string, v: ModelVersion): ModelRef | undefined => {
    const versions = index.get(name) ?? new Map<string, ModelRef>();
    index.set(name, versions);
    const existing = versions.get(v.version);
    if (!existing) versions.set(v.version, { name, ...v });
    // The registry keeps no input declaration: a Model file's, for the same artifact, completes it.
    else if (existing.digest === v.digest && v.input !== undefined && existing.input === undefined) versions.set(v.version, { ...existing, input: v.input });
    return existing;
  };
  // The registry first: its versions are immutable, so a Model file that
  // disagrees with it is the one in error.
  for (const m of registry) {
    if (!index.has(m.name)) index.set(m.name, new Map());
    for (const v of m.versions) add(m.name, v);
  }
  for (const o of objects) {
    if (o.kind !== 'Model') continue;
    if (!index.has(o.metadata.name)) index.set(o.metadata.name, new Map());
    for (const [i, v] of o.spec.versions.entries()) {
      const existing = add(o.metadata.name, v);
      if (existing && existing.digest !== v.digest) {
        conflicts.push({
          model: o.metadata.name,
          versionIndex: i,
          message: `version "${v.version}" is already registered with digest ${existing.digest}; versions are immutable, give the new artifact a new version`,
        });
      }
    }
  }
  return { index, conflicts };
}

/** Known model versions from Model objects and the registry; the registry wins when both list a version. */
export function buildModelIndex(objects: readonly PolicyObject[], registry: readonly RegisteredModel[] = []): ModelIndex {
  return indexModels(objects, registry).index;
}

/**
 * Report every reference to a placement, model or model version that does not
 * exist, and Model versions whose digest contradicts the registry. With the
 * source map from parsePolicyDocuments each error points at the referring
 * field; without it (objects from the database) file is `Kind/name`, line 0.
 */
export function checkReferences(
  objects: readonly PolicyObject[],
  registry: readonly RegisteredModel[] = [],
  sourceMap?: PolicySourceMap,
): PolicyError[] {
  const { index, conflicts } = indexModels(objects, registry);
  const placements = new Set(objects.filter((o) => o.kind === 'Placement').map((o) => o.metadata.name));
  const errors: PolicyError[] = [];

  const report = (kind: PolicyKind, name: string, path: (string | number)[], message: string) => {
    const where = sourceMap?.locate(kind, name, path) ?? { file: `${kind}/${name}`, line: 0, column: 0 };
    errors.push({ ...where, path: formatPath(path), message, object: `${kind}/${name}` });
  };
  const checkPlacement = (kind: PolicyKind, name: string, placement: string) => {
    if (!placements.has(placement)) {
      const known = [...placements].sort();
      report(kind, name, ['spec', 'placement'], `unknown placement "${placement}"${known.length ? `; known: ${known.join(', ')}` : '; no Placement is defined'}`);
    }
  };
  const checkModelVersion = (kind: PolicyKind, name: string, field: string, ref: { name: string; version: string }) => {
    const versions = index.get(ref.name);
    if (!versions) {
      report(kind, name, ['spec', field, 'name'], `unknown model "${ref.name}"`);
    } else if (!versions.has(ref.version)) {
      const known = [...versions.keys()].sort();
      report(kind, name, ['spec', field, 'version'], `model "${ref.name}" has no version "${ref.version}"${known.length ? `; known: ${known.join(', ')}` : ''}`);
    }
  };

  for (const c of conflicts) report('Model', c.model, ['spec', 'versions', c.versionIndex, 'digest'], c.message);
  for (const o of objects) {
    const name = o.metadata.name;
    if (o.kind === 'ModelDeployment') {
      checkModelVersion(o.kind, name, 'model', o.spec.model);
      checkPlacement(o.kind, name, o.spec.placement);
    } else if (o.kind === 'FineTuneJob') {
      checkModelVersion(o.kind, name, 'baseModel', o.spec.baseModel);
      checkPlacement(o.kind, name, o.spec.placement);
      // The produced version is registered under output.model, which must exist to receive it.
      if (!index.has(o.spec.output.model)) {
        report(o.kind, name, ['spec', 'output', 'model'], `unknown model "${o.spec.output.model}"`);
      }
    }
  }
  return errors;
}
