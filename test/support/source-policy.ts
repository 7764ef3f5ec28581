import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SourcePolicy, type SourcePolicySettings } from '../../apps/agent/src/security/source-policy.js';

/** The checkout's root, from the sources or from dist/ alike. */
function repoRoot(): string {
  for (let dir = import.meta.dirname; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${import.meta.dirname}`);
  }
}

/**
 * The source policy of tests that are not about it: models under the system
 * temporary directory and the repository's fixtures, servers on loopback.
 * Tests of the policy itself build their own.
 */
export function testSourcePolicy(overrides: Partial<SourcePolicySettings> = {}): SourcePolicy {
  return new SourcePolicy({
    artifactRoots: [os.tmpdir(), path.join(repoRoot(), 'test', 'fixtures')],
    datasetRoots: [],
    allowPrivateArtifactHosts: true,
    artifactHostCidrs: [],
    trustedOrigins: [],
    trainerRegistries: [],
    ...overrides,
  });
}
