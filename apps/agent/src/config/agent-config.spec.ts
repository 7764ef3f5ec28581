import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentConfigError, parseAgentConfig } from './agent-config.js';

const problemsOf = (flags: Parameters<typeof parseAgentConfig>[0]): string[] => {
  try {
    parseAgentConfig(flags, '/srv');
  } catch (err) {
    if (err instanceof AgentConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected an AgentConfigError');
};

describe('agent configuration', () => {
  it('fills in the defaults of `flotilla agent run`', () => {
    expect(parseAgentConfig({}, '/srv')).toEqual({
      stateDir: '/var/lib/flotilla-agent',
      runtime: 'process',
      kubeconfig: null,
      namespace: 'flotilla',
      mqttUrlOverride: null,
      metrics: { port: 9464, host: '127.0.0.1', orAnyFreePort: false },
      gpu: { kind: 'nvidia-smi' },
      cacheMaxBytes: 50 * 1024 ** 3,
      logLevel: 'info',
      serve: { address: '127.0.0.1', advertiseHost: null },
      exposure: { type: 'ClusterIP' },
      sources: { artifactRoots: [], datasetRoots: [], trainerRegistries: [], artifactHostCidrs: [], allowPrivateArtifactHosts: false },
    });
  });

  it('reads every flag, resolving paths against the working directory', () => {
    expect(
      parseAgentConfig(
        {
          stateDir: 'state',
          runtime: 'kubernetes',
          kubeconfig: 'kube/config',
          namespace: 'edge-1',
          mqttUrl: 'mqtts://broker:8883',
          metricsPort: 'off',
          gpu: 'dcgm=http://127.0.0.1:9400/metrics',
          cacheMaxBytes: '0',
          logLevel: 'debug',
        },
        '/srv',
      ),
    ).toEqual({
      stateDir: '/srv/state',
      runtime: 'kubernetes',
      kubeconfig: '/srv/kube/config',
      namespace: 'edge-1',
      mqttUrlOverride: 'mqtts://broker:8883',
      metrics: null,
      gpu: { kind: 'dcgm', url: 'http://127.0.0.1:9400/metrics' },
      cacheMaxBytes: 0,
      logLevel: 'debug',
      serve: { address: '127.0.0.1', advertiseHost: null },
      exposure: { type: 'ClusterIP' },
      sources: { artifactRoots: [], datasetRoots: [], trainerRegistries: [], artifactHostCidrs: [], allowPrivateArtifactHosts: false },
    });
  });

  it('names every bad flag in one error, each with the value it got', () => {
    const problems = problemsOf({
      runtime: 'docker',
      namespace: 'Not_A_Namespace',
      mqttUrl: 'http://broker',
      metricsPort: '70000',
      gpu: 'amd',
      cacheMaxBytes: '-1',
      logLevel: 'loud',
    });
    expect(problems).toEqual([
      '--runtime must be process, kubernetes or none (got "docker")',
      '--namespace must be a Kubernetes namespace name (lower-case letters, digits and "-", at most 63)',
      '--mqtt-url must use mqtt:, mqtts:, tcp:, ssl:, ws:, wss: (got http:)',
      '--metrics-port must be a TCP port (0-65535, 0: any free port) or "off" (got "70000")',
      '--gpu must be nvidia-smi, dcgm=URL or none (got "amd")',
      '--cache-max-bytes must be a whole number of bytes (got "-1")',
      '--log-level must be one of fatal, error, warn, info, debug, trace, silent (got "loud")',
    ]);
  });

  it('rejects a kubeconfig for a runtime that does not use it, a DCGM source without a URL and an empty state directory', () => {
    expect(problemsOf({ kubeconfig: '/etc/kube', gpu: 'dcgm=nowhere', stateDir: ' ' })).toEqual([
      '--state-dir must not be empty',
      '--gpu dcgm=URL needs an http(s) URL of a DCGM exporter (got "nowhere")',
      '--kubeconfig is only used with --runtime kubernetes (the runtime is process)',
    ]);
  });

  it('says which setting it does not know', () => {
    expect(problemsOf({ metricsPort: '0', verbose: 'yes' } as never)).toEqual(['unknown setting(s): verbose']);
  });

  it('starts its message with one line and lists the problems under it', () => {
    expect(() => parseAgentConfig({ metricsPort: 'x', cacheMaxBytes: 'y' })).toThrow(
      'invalid agent configuration:\n  - --metrics-port must be a TCP port (0-65535, 0: any free port) or "off" (got "x")\n  - --cache-max-bytes must be a whole number of bytes (got "y")',
    );
  });

  it('joins the source policy from flags, environment and a JSON file, resolving directories against the working directory', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'agent-sources-'));
    const file = path.join(dir, 'sources.json');
    writeFileSync(file, JSON.stringify({ artifactRoots: ['/srv/models'], trainerRegistries: ['ghcr.io/acme'], allowPrivateArtifactHosts: false }));
    const config = parseAgentConfig(
      { artifactRoot: ['models', '/opt/models'], datasetRoot: ['/data'], trainerRegistry: ['registry.example.com'], artifactHostCidr: ['10.20.0.0/16'], sourcePolicy: file },
      '/srv',
      { FLOTILLA_ARTIFACT_ROOTS: '/mnt/a:/mnt/b', FLOTILLA_DATASET_ROOTS: '/data', FLOTILLA_ALLOW_PRIVATE_ARTIFACT_HOSTS: 'true' },
    );
    expect(config.sources).toEqual({
      artifactRoots: ['/srv/models', '/opt/models', '/mnt/a', '/mnt/b'],
      datasetRoots: ['/data'],
      trainerRegistries: ['registry.example.com', 'ghcr.io/acme'],
      artifactHostCidrs: ['10.20.0.0/16'],
      allowPrivateArtifactHosts: true,
    });
  });

  it('names a bad CIDR, registry, environment value and policy file', () => {
    const problems = (() => {
      try {
        parseAgentConfig({ artifactHostCidr: ['10.0.0.0/40'], trainerRegistry: ['https://x'], sourcePolicy: '/nonexistent/sources.json' }, '/srv', { FLOTILLA_ALLOW_PRIVATE_ARTIFACT_HOSTS: 'yes' });
      } catch (err) {
        return (err as AgentConfigError).problems;
      }
      return [];
    })();
    expect(problems).toEqual([
      expect.stringContaining('--source-policy /nonexistent/sources.json: ENOENT'),
      'FLOTILLA_ALLOW_PRIVATE_ARTIFACT_HOSTS must be true or false (got "yes")',
      '--artifact-host-cidr: "10.0.0.0/40" is not a CIDR range (like 10.20.0.0/16 or fd00::/8)',
      expect.stringContaining('--trainer-registry "https://x" is not a registry host'),
    ]);
  });
});
