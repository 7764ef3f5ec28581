import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { parseCidr, SourcePolicy, type SourcePolicySettings } from './source-policy.js';

/** The source policy as configured: everything but the origins the agent trusts by itself (its hub). */
export type SourceSettings = Omit<SourcePolicySettings, 'trustedOrigins'>;

/** The source-policy flags as the command line gives them (repeatable ones as lists). */
export interface SourceFlags {
  artifactRoot?: string[];
  datasetRoot?: string[];
  trainerRegistry?: string[];
  artifactHostCidr?: string[];
  allowPrivateArtifactHosts?: boolean;
  /** A JSON file with the same settings (`artifactRoots`, `datasetRoots`, ...). */
  sourcePolicy?: string;
}

/** Environment variables read for the source policy, added to the flags (lists are joined, never replaced). */
export const SOURCE_ENV = {
  artifactRoots: 'FLOTILLA_ARTIFACT_ROOTS',
  datasetRoots: 'FLOTILLA_DATASET_ROOTS',
  trainerRegistries: 'FLOTILLA_TRAINER_REGISTRIES',
  artifactHostCidrs: 'FLOTILLA_ARTIFACT_HOST_CIDRS',
  allowPrivateArtifactHosts: 'FLOTILLA_ALLOW_PRIVATE_ARTIFACT_HOSTS',
} as const;

const FileSchema = z
  .object({
    artifactRoots: z.array(z.string().min(1)).max(100).optional(),
    datasetRoots: z.array(z.string().min(1)).max(100).optional(),
    trainerRegistries: z.array(z.string().min(1)).max(100).optional(),
    artifactHostCidrs: z.array(z.string().min(1)).max(100).optional(),
    allowPrivateArtifactHosts: z.boolean().optional(),
  })
  .strict();

const list = (text: string | undefined, sep: string | RegExp) =>
  (text ?? '')
    .split(sep)
    .map((s) => s.trim())
    .filter((s) => s !== '');

/**
 * Reads the source policy from flags, the environment and an optional JSON
 * file, resolving relative directories from `cwd`. Pushes one message per
 * bad value onto `problems` (the agent's configuration error lists them all).
 */
export function readSourceSettings(flags: SourceFlags, env: NodeJS.ProcessEnv, cwd: string, problems: string[]): SourceSettings {
  let file: z.infer<typeof FileSchema> = {};
  if (flags.sourcePolicy) {
    const at = path.resolve(cwd, flags.sourcePolicy);
    try {
      const parsed = FileSchema.safeParse(JSON.parse(readFileSync(at, 'utf8')));
      if (parsed.success) file = parsed.data;
      else problems.push(`--source-policy ${at}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
    } catch (err) {
      problems.push(`--source-policy ${at}: ${(err as Error).message}`);
    }
  }
  const dirs = (fromFlags: string[] | undefined, envName: string, fromFile: string[] | undefined) =>
    [...new Set([...(fromFlags ?? []), ...list(env[envName], path.delimiter), ...(fromFile ?? [])].map((d) => path.resolve(cwd, d)))];
  const names = (fromFlags: string[] | undefined, envName: string, fromFile: string[] | undefined) => [...new Set([...(fromFlags ?? []), ...list(env[envName], ','), ...(fromFile ?? [])])];

  const allowEnv = env[SOURCE_ENV.allowPrivateArtifactHosts];
  if (allowEnv !== undefined && allowEnv !== '' && allowEnv !== 'true' && allowEnv !== 'false') problems.push(`${SOURCE_ENV.allowPrivateArtifactHosts} must be true or false (got ${JSON.stringify(allowEnv)})`);
  const settings: SourceSettings = {
    artifactRoots: dirs(flags.artifactRoot, SOURCE_ENV.artifactRoots, file.artifactRoots),
    datasetRoots: dirs(flags.datasetRoot, SOURCE_ENV.datasetRoots, file.datasetRoots),
    trainerRegistries: names(flags.trainerRegistry, SOURCE_ENV.trainerRegistries, file.trainerRegistries),
    artifactHostCidrs: names(flags.artifactHostCidr, SOURCE_ENV.artifactHostCidrs, file.artifactHostCidrs),
    allowPrivateArtifactHosts: flags.allowPrivateArtifactHosts === true || allowEnv === 'true' || file.allowPrivateArtifactHosts === true,
  };
  for (const c of settings.artifactHostCidrs) {
    try {
      parseCidr(c);
    } catch (err) {
      problems.push(`--artifact-host-cidr: ${(err as Error).message}`);
    }
  }
  try {
    new SourcePolicy({ ...settings, artifactHostCidrs: [], trustedOrigins: [] });
  } catch (err) {
    problems.push((err as Error).message);
  }
  return settings;
}
