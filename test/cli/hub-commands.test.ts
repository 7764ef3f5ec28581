import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { runCli } from '../support/cli.js';
import { startTestHub, type TestHub } from '../support/hub.js';
import { waitFor } from '../support/wait.js';
import { createRepo } from '../git/repo-kit.js';

const gpu = (product: string, memoryGiB: number) => ({ cpuCores: 16, memoryGiB: 64, gpus: [{ index: 0, uuid: 'GPU-0', product, memoryGiB, mig: false }] });
const ready = { type: 'Ready', status: 'True', reason: 'Reconciled', message: 'all workloads ready', lastTransitionTime: new Date().toISOString() };

describe('flotilla get, describe, diff and apply against a hub', () => {
  let t: TestHub;
  let tmp: string;
  let env: Record<string, string>;
  const cli = (...args: string[]) => runCli(args, env);
  /** The exit code, with stderr alongside so a failure shows why. */
  const exited = (r: { code: number; stderr: string }, code: number) => expect({ code: r.code, ...(r.code === code ? {} : { stderr: r.stderr }) }).toEqual({ code });

  beforeAll(async () => {
    t = await startTestHub();
    env = { FLOTILLA_URL: t.hub.apiUrl, FLOTILLA_TOKEN: t.adminToken };
    tmp = await mkdtemp(path.join(os.tmpdir(), 'flotilla-cli-'));
    const spokes = [
      ['depot-lyon', { region: 'eu', 'data-residency': 'eu', 'gpu.product': 'L40S' }, gpu('NVIDIA L40S', 48), 'online'],
      ['depot-gdansk', { region: 'eu', 'data-residency': 'eu', 'gpu.product': 'T4' }, gpu('Tesla T4', 16), 'online'],
      ['van-12', { class: 'field-unit', region: 'eu' }, { cpuCores: 4, memoryGiB: 8, gpus: [] }, 'offline'],
    ] as const;
    for (const [name, labels, capacity, presence] of spokes) {
      await t.hub.dataSource.query(
        `INSERT INTO spokes (name, labels, capacity, presence, last_seen_at, conditions, mqtt_username) VALUES ($1, $2::jsonb, $3::jsonb, $4, now(), $5::jsonb, $6)`,
        [name, JSON.stringify(labels), JSON.stringify(capacity), presence, JSON.stringify(presence === 'online' ? [ready] : []), `${name}.test`],
      );
    }
  }, 60_000);

  afterAll(async () => {
    await t?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  test('without a hub URL or token: exit 2 naming what is missing; flags override the environment', async () => {
    const r = await runCli(['get', 'spokes'], { FLOTILLA_URL: '', FLOTILLA_TOKEN: '' });
    exited(r, 2);
    expect(r.stderr).toContain('--url or FLOTILLA_URL');
    expect(r.stderr).toContain('--token or FLOTILLA_TOKEN');
    const flags = await runCli(['get', 'spokes', '--url', t.hub.apiUrl, '--token', t.adminToken], { FLOTILLA_URL: 'http://127.0.0.1:9', FLOTILLA_TOKEN: 'wrong' });
    exited(flags, 0);
  });

  test('a wrong token exits 4 (401), an unreachable hub exits 1', async () => {
    const r = await runCli(['get', 'spokes'], { ...env, FLOTILLA_TOKEN: 'flt_not-a-real-token' });
    exited(r, 4);
    expect(r.stderr).toMatch(/did not accept the token.*unknown or revoked token/);
    const down = await runCli(['get', 'spokes'], { ...env, FLOTILLA_URL: 'http://127.0.0.1:9' });
    exited(down, 1);
    expect(down.stderr).toContain('cannot reach the hub at http://127.0.0.1:9');
  });

  test('diff previews the example repository: every object created, the spokes that would change, nothing written', async () => {
    const r = await cli('diff', '-f', 'examples/policies');
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toContain('Objects (dry run, nothing changed):');
    expect(r.stdout).toMatch(/\+\s+ModelDeployment\/bridge-defects-eu\s+created/);
    expect(r.stdout).toContain('2 spokes would change:\n  depot-lyon\n    + deployment/bridge-defects-eu\n    + job/bridge-defects-eu-site-tuning\n  van-12\n    + deployment/bridge-defects-field\n');
    expect((await t.api('GET', '/api/v1/policy-objects')).body.items).toEqual([]);
    const json = await cli('diff', '-f', 'examples/policies', '-o', 'json');
    expect(JSON.parse(json.stdout).spokes.map((s: { spoke: string }) => s.spoke)).toEqual(['depot-lyon', 'van-12']);
  });

  test('apply writes the objects and says what changed; applying again changes nothing', async () => {
    const r = await cli('apply', '-f', 'examples/policies', '--source', 'examples');
    exited(r, 0);
    expect(r.stdout).toMatch(/\+\s+Placement\/eu-gpu-sites\s+created/);
    expect(r.stdout).toContain('2 spokes changed:');
    expect((await t.api('GET', '/api/v1/policy-objects?source=examples')).body.items).toHaveLength(9);
    const again = await cli('apply', '-f', 'examples/policies', '--source', 'examples');
    expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 0, stderr: '' });
    expect(again.stdout).toContain('No spoke changed.');
    expect(again.stdout).not.toMatch(/created|updated/);
  });

  test('a reference only the hub can check is refused with 400: exit 3 with the file, line and field', async () => {
    const file = path.join(tmp, 'ghost.yaml');
    await writeFile(file, 'apiVersion: flotilla.dev/v1\nkind: ModelDeployment\nmetadata: { name: ghost }\nspec:\n  model: { name: ghost, version: "1.0.0" }\n  placement: eu-gpu-sites\n  runtime: builtin\n');
    const r = await cli('apply', '-f', file);
    exited(r, 3);
    expect(r.stderr).toContain(`  ${file}:5:18 spec.model.name: unknown model "ghost"`);
    expect((await t.api('GET', '/api/v1/deployments/ghost')).status).toBe(404);
  });

  test('a malformed file is reported before anything is sent: exit 3 even with no hub listening', async () => {
    const r = await runCli(['apply', '-f', 'test/fixtures/policy/bad/wrong-type.yaml'], { ...env, FLOTILLA_URL: 'http://127.0.0.1:9' });
    exited(r, 3);
    expect(r.stderr).toContain('test/fixtures/policy/bad/wrong-type.yaml:12:10 spec.replicas.max: expected number, got "four"');
    expect((await cli('apply', '-f', 'examples/policies', '--prune')).code).toBe(2);
  });

  test('a viewer may get but not apply: exit 4 on 403', async () => {
    const viewer = (await t.api('POST', '/api/v1/api-tokens', { name: 'cli-viewer', role: 'viewer' })).body.token;
    const r = await runCli(['apply', '-f', 'examples/policies'], { ...env, FLOTILLA_TOKEN: viewer });
    exited(r, 4);
    expect(r.stderr).toContain('not allowed: role viewer may not do this; it needs operator');
    expect((await runCli(['get', 'deployments'], { ...env, FLOTILLA_TOKEN: viewer })).code).toBe(0);
  });

  test('get spokes prints an aligned table: name, connection, last seen, generations, readiness, labels', async () => {
    const r = await cli('get', 'spokes');
    exited(r, 0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+CONNECTION\s+LAST-SEEN\s+GEN\s+READY\s+LABELS$/);
    expect(lines.slice(1).map((l) => l.split(/\s{3,}/))).toEqual([
      ['depot-gdansk', 'online', expect.stringMatching(/^\d+s ago$/), expect.stringMatching(/^0\/\d+$/), 'True', 'data-residency=eu,gpu.product=T4,region=eu'],
      ['depot-lyon', 'online', expect.stringMatching(/^\d+s ago$/), expect.stringMatching(/^0\/\d+$/), 'True', 'data-residency=eu,gpu.product=L40S,region=eu'],
      ['van-12', 'offline', expect.stringMatching(/^\d+s ago$/), expect.stringMatching(/^0\/\d+$/), '-', 'class=field-unit,region=eu'],
    ]);
    // Every column starts where its header does, on every line.
    const header = lines[0]!;
    for (const col of ['CONNECTION', 'LAST-SEEN', 'GEN', 'READY', 'LABELS']) {
      const at = header.indexOf(col);
      for (const l of lines.slice(1)) expect({ col, line: l, before: l[at - 1], at: l[at] !== ' ' }).toEqual({ col, line: l, before: ' ', at: true });
    }
  });

  test('get with a selector filters on the hub; a bad selector exits 3', async () => {
    const r = await cli('get', 'spokes', '--selector', 'gpu.product in (L40S,H100)', '-o', 'json');
    exited(r, 0);
    expect(JSON.parse(r.stdout).map((s: { name: string }) => s.name)).toEqual(['depot-lyon']);
    const bad = await cli('get', 'spokes', '--selector', 'region in (eu');
    expect({ code: bad.code, stderr: bad.stderr }).toEqual({ code: 3, stderr: expect.stringContaining('selector') });
  });

  test('get deployments, placements, jobs and models in table, json and yaml', async () => {
    const table = await cli('get', 'deployments');
    exited(table, 0);
    expect(table.stdout.split('\n')[0]).toMatch(/^NAME\s+MODEL\s+RUNTIME\s+PLACEMENT\s+SPOKES\s+COMPLIANT\s+NONCOMPLIANT\s+PENDING\s+UNKNOWN\s+SOURCE$/);
    expect(table.stdout).toMatch(/bridge-defects-field\s+concrete-defects@1\.1\.0\s+builtin\s+cpu-field-units\s+1\s+0\s+0\s+0\s+1\s+examples/);
    const yaml = parse((await cli('get', 'placements', '-o', 'yaml')).stdout) as { name: string; decision: { selectedCount: number } }[];
    expect(yaml.map((p) => [p.name, p.decision.selectedCount])).toEqual([
      ['cpu-field-units', 1],
      ['eu-gpu-sites', 1],
      ['us-gpu-sites', 0],
    ]);
    const jobs = JSON.parse((await cli('get', 'jobs', '-o', 'json')).stdout);
    expect(jobs.map((j: { name: string }) => j.name)).toEqual(['bridge-defects-eu-site-tuning', 'bridge-defects-us-site-tuning']);
    await t.api('POST', '/api/v1/models', { name: 'registered-only', task: 'detection' });
    await t.api('POST', '/api/v1/models/registered-only/versions', { version: '2.0.0', digest: 'sha256:' + 'ef'.repeat(32), uri: 'file:///m/2.onnx', format: 'onnx' });
    const models = await cli('get', 'models');
    expect(models.stdout).toMatch(/concrete-defects\s+1\.0\.0,1\.1\.0\s+image-classification\s+examples/);
    expect(models.stdout).toMatch(/registered-only\s+2\.0\.0\s+detection\s+registry \(api:bootstrap-admin\)/);
    expect((await cli('get', 'deployments', 'bridge-defects-eu', '-o', 'json')).stdout).toContain('"compliance"');
    expect((await cli('get', 'gadgets')).code).toBe(2);
    expect((await cli('get', 'spokes', '-o', 'xml')).code).toBe(2);
  });

  test('describe placement explains each spoke left out; describe deployment gives compliance per spoke', async () => {
    const p = await cli('describe', 'placement', 'eu-gpu-sites');
    expect(p.code).toBe(0);
    expect(p.stdout).toMatch(/Selector:\s+region=eu,gpu\.product in \(L40S,H100\),!quarantined/);
    expect(p.stdout).toContain('Selected (1 of 3 spokes):\n  depot-lyon\n');
    expect(p.stdout).toMatch(/depot-gdansk\s+label selector: needs gpu\.product in \(L40S,H100\) \(gpu\.product is "T4"\)/);
    expect(p.stdout).toMatch(/\n\s+capacity: needs 1 GPU .* 0 fit \(reports Tesla T4 16 GiB\)/);
    expect(p.stdout).toMatch(/van-12\s+label selector/);
    expect(p.stdout).toMatch(/Used by:\s+deployment\/bridge-defects-eu, job\/bridge-defects-eu-site-tuning/);

    const d = await cli('describe', 'deployment', 'bridge-defects-field');
    exited(d, 0);
    expect(d.stdout).toMatch(/Compliance:\s+0 Compliant, 0 NonCompliant, 0 Pending, 1 Unknown/);
    expect(d.stdout).toMatch(/van-12\s+Unknown\s+SpokeOffline\s+offline/);
    expect(d.stdout).toMatch(/Source:\s+examples \(generation 1/);
  });

  test('describe spoke shows connection, capacity, GPUs and conditions with reason and message', async () => {
    const r = await cli('describe', 'spoke', 'depot-lyon');
    exited(r, 0);
    expect(r.stdout).toMatch(/Labels:\s+data-residency=eu,gpu\.product=L40S,region=eu/);
    expect(r.stdout).toMatch(/Capacity:\s+16 CPU cores, 64 GiB memory, 1 GPU/);
    expect(r.stdout).toMatch(/0\s+NVIDIA L40S\s+48 GiB\s+no/);
    expect(r.stdout).toMatch(/Ready\s+True\s+Reconciled\s+\d+s\s+all workloads ready/);
    const json = JSON.parse((await cli('describe', 'spoke', 'depot-lyon', '-o', 'json')).stdout);
    expect(json.name).toBe('depot-lyon');
  });

  test('unknown names exit 4 with the hub’s message; an unknown kind exits 2', async () => {
    const r = await cli('describe', 'spoke', 'nope');
    exited(r, 4);
    expect(r.stderr).toBe('flotilla: spoke "nope" not found\n');
    expect((await cli('get', 'placements', 'nope')).code).toBe(4);
    expect((await cli('describe', 'gadget', 'x')).code).toBe(2);
  });

  test('git sources: get shows the status, describe lists the last error’s problems with file:line', async () => {
    const repo = await createRepo();
    try {
      const head = await repo.commit({ 'deploy/x.yaml': 'apiVersion: flotilla.dev/v1\nkind: Placement\nmetadata:\n  name: x\nspec:\n  selector: {}\n colour: red\n' });
      expect((await t.api('POST', '/api/v1/git-sources', { name: 'broken', url: repo.url, intervalSeconds: 3600 })).status).toBe(201);
      await waitFor('the bad commit recorded', async () => (await t.api('GET', '/api/v1/git-sources/broken')).body.lastError);
      const g = await cli('get', 'git-sources');
      expect(g.stdout).toMatch(new RegExp(`broken\\s+${repo.url}\\s+main\\s+\\.\\s+3600s\\s+-\\s+never\\s+0\\s+Failed at ${head.slice(0, 12)}: policy has 1 error`));
      const d = await cli('describe', 'git-source', 'broken');
      expect(d.stdout).toMatch(/Status:\s+Failed/);
      expect(d.stdout).toContain('  deploy/x.yaml:7:2 ');
    } finally {
      await repo.remove();
    }
  });
});
