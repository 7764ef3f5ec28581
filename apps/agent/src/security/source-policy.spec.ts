import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { imageRepository, SourcePolicy, SourceRefusedError, type AddressLookup, type SourcePolicySettings } from './source-policy.js';

const base: SourcePolicySettings = {
  artifactRoots: [],
  datasetRoots: [],
  allowPrivateArtifactHosts: false,
  artifactHostCidrs: [],
  trustedOrigins: [],
  trainerRegistries: [],
};

const refusal = async (p: Promise<unknown> | (() => unknown)): Promise<SourceRefusedError> => {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    if (err instanceof SourceRefusedError) return err;
    throw err;
  }
  throw new Error('expected a SourceRefusedError');
};

describe('SourcePolicy', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'source-policy-'));
  const root = path.join(dir, 'models');
  mkdirSync(root);
  writeFileSync(path.join(root, 'm.onnx'), 'model');
  writeFileSync(path.join(dir, 'secret'), 'secret');
  symlinkSync(path.join(dir, 'secret'), path.join(root, 'link'));
  const policy = new SourcePolicy({ ...base, artifactRoots: [root], datasetRoots: [root] });

  describe('file: artifacts', () => {
    it('resolves a file under an artifact root', async () => {
      await expect(policy.resolveArtifactFile(path.join(root, 'm.onnx'), 'file:m')).resolves.toBe(path.join(root, 'm.onnx'));
    });

    it('refuses a path outside every root alike whether it exists or not, naming the rule', async () => {
      const shadow = await refusal(policy.resolveArtifactFile('/etc/shadow', 'file:///etc/shadow'));
      const none = await refusal(policy.resolveArtifactFile('/etc/no-such-file', 'file:///etc/no-such-file'));
      expect(shadow.rule).toBe('artifact-root');
      expect(shadow.message).toContain('nothing was read');
      expect(shadow.message).toContain('--artifact-root');
      expect(none.message.replace('no-such-file', 'shadow')).toBe(shadow.message);
    });

    it('refuses a name inside a root that leaves it by .. or a symbolic link', async () => {
      expect((await refusal(policy.resolveArtifactFile(path.join(root, '..', 'secret'), 'file:x'))).rule).toBe('artifact-root');
      expect((await refusal(policy.resolveArtifactFile(path.join(root, 'link'), 'file:x'))).message).toContain('symbolic link');
      expect((await refusal(policy.resolveArtifactFile(`${root}-sibling/m.onnx`, 'file:x'))).rule).toBe('artifact-root');
    });

    it('allows nothing when no root is configured', async () => {
      const none = new SourcePolicy(base);
      expect((await refusal(none.resolveArtifactFile(path.join(root, 'm.onnx'), 'file:x'))).message).toContain('none is configured');
    });
  });

  describe('http(s) artifacts', () => {
    const lookups: Record<string, string[]> = { 'models.example': ['93.184.216.34'], 'sneaky.example': ['93.184.216.34', '10.0.0.7'], 'local.example': ['127.0.0.1'] };
    const lookup: AddressLookup = async (host) => (lookups[host] ?? []).map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    const strict = new SourcePolicy(base, { lookup });

    it('allows public addresses and refuses loopback, link-local, private and mapped ones', async () => {
      await expect(strict.checkArtifactUrl('https://models.example/m.onnx')).resolves.toBeUndefined();
      await expect(strict.checkArtifactUrl('http://93.184.216.34/m')).resolves.toBeUndefined();
      for (const uri of ['http://127.0.0.1:8080/', 'http://[::1]/', 'http://169.254.169.254/latest/meta-data', 'http://10.1.2.3/', 'http://192.168.1.1/', 'http://[::ffff:127.0.0.1]/', 'http://[fe80::1]/', 'http://0.0.0.0/']) {
        expect((await refusal(strict.checkArtifactUrl(uri))).rule).toBe('artifact-host');
      }
    });

    it('checks every address a name resolves to', async () => {
      expect((await refusal(strict.checkArtifactUrl('https://local.example/m'))).message).toContain('local.example resolves to 127.0.0.1');
      expect((await refusal(strict.checkArtifactUrl('https://sneaky.example/m'))).message).toContain('10.0.0.7');
    });

    it('allows private hosts when told, per CIDR or all of them, and always the trusted origin', async () => {
      const cidr = new SourcePolicy({ ...base, artifactHostCidrs: ['10.0.0.0/8'] }, { lookup });
      await expect(cidr.checkArtifactUrl('http://10.1.2.3/m')).resolves.toBeUndefined();
      expect((await refusal(cidr.checkArtifactUrl('http://192.168.1.1/m'))).rule).toBe('artifact-host');
      await expect(new SourcePolicy({ ...base, allowPrivateArtifactHosts: true }).checkArtifactUrl('http://127.0.0.1/m')).resolves.toBeUndefined();
      const hub = new SourcePolicy({ ...base, trustedOrigins: ['http://127.0.0.1:8080'] });
      await expect(hub.checkArtifactUrl('http://127.0.0.1:8080/api/v1/artifacts/x')).resolves.toBeUndefined();
      expect((await refusal(hub.checkArtifactUrl('http://127.0.0.1:8081/'))).rule).toBe('artifact-host');
    });

    it('refuses schemes other than http(s)', async () => {
      expect((await refusal(strict.checkArtifactUrl('gopher://x/'))).rule).toBe('artifact-scheme');
    });
  });

  describe('trainer images', () => {
    const images = new SourcePolicy({ ...base, trainerRegistries: ['registry.example.com', 'ghcr.io/acme', 'docker.io/library'] });

    it('reads image references with Docker defaults', () => {
      expect(imageRepository('python:3.12')).toBe('docker.io/library/python');
      expect(imageRepository('acme/trainer:1')).toBe('docker.io/acme/trainer');
      expect(imageRepository('localhost:5000/t@sha256:' + 'a'.repeat(64))).toBe('localhost:5000/t');
      expect(imageRepository('ghcr.io/acme/probe:3')).toBe('ghcr.io/acme/probe');
      expect(imageRepository('Bad Image')).toBeNull();
    });

    it('allows registries and path prefixes, and nothing that only looks like them', () => {
      expect(() => images.checkTrainerImage('registry.example.com/team/t:1')).not.toThrow();
      expect(() => images.checkTrainerImage('ghcr.io/acme/probe:3')).not.toThrow();
      expect(() => images.checkTrainerImage('python:3.12')).not.toThrow();
      for (const image of ['registry.example.com.evil.io/t:1', 'ghcr.io/acmeevil/t:1', 'ghcr.io/t:1', 'evil/python:3', 'registry.example.com/../x']) {
        expect(refusalSync(() => images.checkTrainerImage(image)).rule).toBe('trainer-registry');
      }
      expect(refusalSync(() => new SourcePolicy(base).checkTrainerImage('python:3')).message).toContain('no trainer registry is allowed');
    });
  });

  describe('datasets', () => {
    it('resolves a dataset directory under a dataset root, refusing relative paths, escapes and links out', async () => {
      await expect(policy.resolveDatasetPath(root + '/')).resolves.toBe(root);
      mkdirSync(path.join(root, 'ds'), { recursive: true });
      await expect(policy.resolveDatasetPath(path.join(root, 'ds'))).resolves.toBe(path.join(root, 'ds'));
      expect((await refusal(policy.resolveDatasetPath('data/x'))).rule).toBe('dataset-root');
      expect((await refusal(policy.resolveDatasetPath('/etc'))).rule).toBe('dataset-root');
      expect((await refusal(policy.resolveDatasetPath(path.join(root, 'link')))).rule).toBe('dataset-root');
    });

    it('checks a Kubernetes hostPath by name: absolute, normalised, under a root', () => {
      const k8s = new SourcePolicy({ ...base, datasetRoots: ['/data'] });
      expect(k8s.datasetHostPath('/data/site-17/labelled')).toBe('/data/site-17/labelled');
      expect(k8s.datasetHostPath('/data')).toBe('/data');
      for (const p of ['/data/../etc', '/etc/kubernetes', 'data/x', '/data//x', '/database', '/']) {
        expect(refusalSync(() => k8s.datasetHostPath(p)).rule).toBe('dataset-root');
      }
    });
  });

  it('names every bad setting at construction', () => {
    expect(() => new SourcePolicy({ ...base, artifactRoots: ['relative'], artifactHostCidrs: ['10.0.0.0/33'], trainerRegistries: ['https://x'] })).toThrow(
      /--artifact-root "relative" must be an absolute path; --artifact-host-cidr: .*10\.0\.0\.0\/33.*; --trainer-registry "https:\/\/x"/,
    );
  });
});

function refusalSync(fn: () => unknown): SourceRefusedError {
  try {
    fn();
  } catch (err) {
    if (err instanceof SourceRefusedError) return err;
    throw err;
  }
  throw new Error('expected a SourceRefusedError');
}
