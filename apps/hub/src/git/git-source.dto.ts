import path from 'node:path';
import { ObjectNameSchema } from '@flotilla/contracts';
import { z } from 'zod';
import type { GitSourceEntity } from '../database/entities/git-source.entity.js';
import { redactUrl } from './policy-repository.js';

/** Branch names as `git check-ref-format --branch` accepts them, minus the exotic corners. */
const BRANCH = /^(?!-)(?!\/)(?!.*\/$)(?!.*\/\/)(?!.*\.\.)(?!.*@\{)(?!.*\.lock$)(?!.*\.$)[^\s~^:?*[\\\x00-\x1f\x7f]+$/;

const GitUrlSchema = z
  .string()
  .max(2048)
  .superRefine((text, ctx) => {
    let u: URL;
    try {
      u = new URL(text);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'not a URL; use file:///path/to/repo or https://host/repo.git' });
      return;
    }
    if (u.protocol === 'file:') {
      if (u.host !== '' && u.host !== 'localhost') ctx.addIssue({ code: 'custom', message: 'file:// URLs name a path on the hub itself (file:///path)' });
    } else if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      ctx.addIssue({ code: 'custom', message: `scheme ${u.protocol} is not supported; use file://, http:// or https://` });
    }
  });

/** A directory inside the repository, normalised: "." for the root, never absolute, never above the root. */
const RepoPathSchema = z
  .string()
  .max(1024)
  .transform((p, ctx) => {
    if (p.includes('\\') || p.includes('\0')) {
      ctx.addIssue({ code: 'custom', message: 'use "/" to separate directories' });
      return z.NEVER;
    }
    if (p.startsWith('/')) {
      ctx.addIssue({ code: 'custom', message: 'a path inside the repository, relative to its root (e.g. "policies" or ".")' });
      return z.NEVER;
    }
    const n = path.posix.normalize(p === '' ? '.' : p).replace(/\/+$/, '');
    if (n === '..' || n.startsWith('../')) {
      ctx.addIssue({ code: 'custom', message: 'must stay inside the repository' });
      return z.NEVER;
    }
    return n === '' ? '.' : n;
  });

export const CreateGitSourceSchema = z
  .object({
    name: ObjectNameSchema,
    url: GitUrlSchema.describe('file:///path/to/repo or http(s)://host/repo.git (credentials in the URL are never shown back)'),
    branch: z.string().min(1).max(255).regex(BRANCH, 'not a valid branch name').default('main'),
    path: RepoPathSchema.default('.').describe('directory inside the repository holding the policy files'),
    intervalSeconds: z.number().int().min(5).max(86_400).default(60).describe('how often to look for new commits'),
  })
  .strict();

export type CreateGitSource = z.infer<typeof CreateGitSourceSchema>;

export function toGitSourceDto(r: GitSourceEntity, objectCount: number) {
  return {
    name: r.name,
    url: redactUrl(r.url),
    branch: r.branch,
    path: r.path,
    intervalSeconds: r.intervalSeconds,
    /** Last commit applied successfully. */
    lastCommit: r.lastCommit,
    /** When the hub last confirmed the source is applied (a sync that applied or found nothing new). */
    lastSyncedAt: r.lastSyncedAt?.toISOString() ?? null,
    /** Why the latest sync failed ({commit, message, problems: [{file, line, column, field, message}], at}); null once a sync succeeds. */
    lastError: r.lastError,
    /** Policy objects this source wrote (source `git:<name>`). */
    objectCount,
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
  };
}
