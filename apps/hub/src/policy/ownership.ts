import type { EntityManager } from 'typeorm';
import type { Role } from '../database/entities/api-token.entity.js';
import { GitSourceEntity } from '../database/entities/git-source.entity.js';
import { DomainError, forbidden } from '../errors/domain-error.js';

/** Sources a git syncer writes as: `git:<source name>`. */
export const GIT_SOURCE_PREFIX = 'git:';

export const isGitSource = (source: string | null | undefined): boolean => typeof source === 'string' && source.startsWith(GIT_SOURCE_PREFIX);

/** A policy object owned by a git source that a request writing as another source would change. */
export interface OwnedObject {
  kind: string;
  name: string;
  /** The git source that owns it, `git:<name>`. */
  owner: string;
}

/**
 * The objects among `rows` that a git source owns and `writer` is not: only
 * that source's syncer changes or prunes them. Objects written through the
 * API belong to nobody in particular (any operator may update them, as
 * before), and so do those of a git source deleted with keepObjects.
 */
export async function ownedByOtherGitSources(em: EntityManager, rows: readonly { kind: string; name: string; source: string }[], writer: string): Promise<OwnedObject[]> {
  const candidates = rows.filter((r) => isGitSource(r.source) && r.source !== writer);
  if (candidates.length === 0) return [];
  const live = new Set((await em.find(GitSourceEntity, { select: { name: true } })).map((g) => `${GIT_SOURCE_PREFIX}${g.name}`));
  return candidates.filter((r) => live.has(r.source)).map((r) => ({ kind: r.kind, name: r.name, owner: r.source }));
}

/** 409 naming each object and its owner, and how to change it anyway. */
export function ownershipConflict(objects: readonly OwnedObject[], verb: 'change' | 'delete'): DomainError {
  const list = objects.map((o) => `${o.kind}/${o.name} (owned by ${o.owner})`);
  const shown = list.slice(0, 10).join(', ') + (list.length > 10 ? ` and ${list.length - 10} more` : '');
  return new DomainError(
    'owned_by_git_source',
    409,
    `cannot ${verb} ${shown}: objects a git source owns change only through its repository; an admin may override with force=true (audited), and the source's next commit writes them again; nothing was changed`,
    { objects },
  );
}

/**
 * The API boundary's part: `force` is for admins only, and writing as a git
 * source (`source=git:NAME`, which is what prune works on) is the syncer's
 * alone unless an admin forces it.
 */
export function checkOwnershipFlags(req: { force: boolean; source: string | undefined; role: Role }): void {
  if (req.force && req.role !== 'admin') throw forbidden('force=true overrides git ownership and needs the admin role', { required: 'admin', role: req.role });
  if (req.source !== undefined && isGitSource(req.source) && !req.force) {
    throw forbidden(`source "${req.source}" belongs to the git source "${req.source.slice(GIT_SOURCE_PREFIX.length)}": only its syncer applies or prunes as it (an admin may force it with force=true)`, {
      source: req.source,
    });
  }
}

/**
 * What the audit event of a forced write records: that it was forced, and
 * whose object it overrode (none when an admin wrote as the owning source itself).
 */
export function overrideDetails(force: boolean, previousSource: string | undefined, writer: string): Record<string, unknown> {
  if (!force) return {};
  return isGitSource(previousSource) && previousSource !== writer ? { force: true, overrodeOwner: previousSource } : { force: true };
}
