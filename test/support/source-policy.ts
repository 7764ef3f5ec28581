import os from 'node:os';
import path from 'node:path';
import { SourcePolicy, type SourcePolicySettings } from '../../apps/agent/src/security/source-policy.js';

/**
 * The source policy of tests that are not about it: models under the system
 * temporary directory and the repository's fixtures, servers on loopback.
 * Tests of the policy itself build their own.
 */
export function testSourcePolicy(overrides: Partial<SourcePolicySettings> = {}): SourcePolicy {
  return new SourcePolicy({
    artifactRoots: [os.tmpdir(), path.resolve(import.meta.dirname, '..', 'fixtures')],
    datasetRoots: [],
    allowPrivateArtifactHosts: true,
    artifactHostCidrs: [],
    trustedOrigins: [],
    trainerRegistries: [],
    ...overrides,
  });
}
