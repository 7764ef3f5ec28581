import { startTestHub, type TestHub } from '../support/hub.js';
import { waitFor } from '../support/wait.js';
import { DIGEST_1, DIGEST_2, startFleet, type Fleet } from '../support/fleet-kit.js';
import { createRepo, type TestRepo } from './repo-kit.js';

const files = {
  model: `apiVersion: flotilla.dev/v1
kind: Model
metadata: { name: bridge-defects }
spec:
  task: image-classification
  versions:
    - { version: "1.0.0", uri: "file:///models/1.0.0/model.onnx", digest: "${DIGEST_1}", format: onnx }
    - { version: "1.1.0", uri: "file:///models/1.1.0/model.onnx", digest: "${DIGEST_2}", format: onnx }
`,
  placement: `apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: eu-sites }
spec:
  selector: { matchLabels: { region: eu } }
`,
  deployment: (version: string) => `apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata:
  name: bridge-defects-eu
spec:
  model: { name: bridge-defects, version: "${version}" }
  placement: eu-sites
  runtime: builtin
  replicas: { min: 1, max: 1 }
  rollout: { strategy: AllAtOnce }
`,
  /** `runtime` one space to the left of its siblings (line 8). */
  badlyIndented: `apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata:
  name: bridge-defects-eu
spec:
  model: { name: bridge-defects, version: "1.0.0" }
  placement: eu-sites
 runtime: builtin
  replicas: { min: 1, max: 1 }
`,
};

const DEPLOYMENT = 'policies/deployments/bridge-defects-eu.yaml';

describe('a git source followed by the hub, with live agents', () => {
  let t: TestHub;
  let fleet: Fleet;
  let repo: TestRepo;
  const commits: string[] = [];

  const source = async () => (await t.api('GET', '/api/v1/git-sources/fleet-policy')).body;
  const euDeployments = () => fleet.agents.get('eu-1')!.runtime.deployments().join();

  beforeAll(async () => {
    t = await startTestHub();
    fleet = await startFleet(t, [
      { name: 'eu-1', labels: { region: 'eu' } },
      { name: 'us-1', labels: { region: 'us' } },
    ]);
    repo = await createRepo();
    commits.push(
      await repo.commit({
        'README.md': '# fleet policy\n',
        '.github/workflows/ci.yml': 'on: push\n',
        'policies/models/bridge-defects.yaml': files.model,
        'policies/placements/eu-sites.yaml': files.placement,
        [DEPLOYMENT]: files.deployment('1.0.0'),
        // Not policy: ignored by name and by the leading dot.
        'policies/notes.txt': 'not yaml',
        'policies/.drafts/wip.yaml': 'this: [is not, a policy',
      }),
    );
  }, 90_000);

  afterAll(async () => {
    await fleet?.stop();
    await t?.stop();
    await repo?.remove();
  });

  test('a new source is fetched and applied at once; objects carry the source and commit; agents receive them', async () => {
    const created = await t.api('POST', '/api/v1/git-sources', { name: 'fleet-policy', url: repo.url, path: './policies/', intervalSeconds: 5 });
    expect(created.status).toBe(201);
    expect(created.body).toEqual(expect.objectContaining({ name: 'fleet-policy', url: repo.url, branch: 'main', path: 'policies', intervalSeconds: 5, lastError: null }));
    await waitFor('first commit applied', async () => (await source()).lastCommit === commits[0]);
    const objects = (await t.api('GET', '/api/v1/policy-objects')).body.items;
    expect(objects.map((o: any) => [`${o.kind}/${o.name}`, o.source, o.commit])).toEqual([
      ['Model/bridge-defects', 'git:fleet-policy', commits[0]],
      ['ModelDeployment/bridge-defects-eu', 'git:fleet-policy', commits[0]],
      ['Placement/eu-sites', 'git:fleet-policy', commits[0]],
    ]);
    expect((await source()).objectCount).toBe(3);
    await waitFor('eu-1 runs 1.0.0', () => euDeployments() === 'bridge-defects-eu@1.0.0');
    await fleet.converged();
    expect(fleet.agents.get('us-1')!.runtime.deployments()).toEqual([]);
  });

  test('a new commit is applied within the interval, with no call to the API, and reaches the agents', async () => {
    commits.push(await repo.commit({ [DEPLOYMENT]: files.deployment('1.1.0') }));
    await waitFor('second commit applied', async () => (await source()).lastCommit === commits[1]);
    await waitFor('eu-1 runs 1.1.0', () => euDeployments() === 'bridge-defects-eu@1.1.0');
    const dep = (await t.api('GET', '/api/v1/deployments/bridge-defects-eu')).body;
    expect(dep).toEqual(expect.objectContaining({ generation: 2, commit: commits[1] }));
    const audit = (await t.api('GET', '/api/v1/audit-events?actor=git%3Afleet-policy')).body.items.map((e: any) => `${e.action} ${e.target}`);
    expect(audit).toEqual(expect.arrayContaining(['git-source.sync git-source/fleet-policy', 'policy.update ModelDeployment/bridge-defects-eu', 'policy.create Placement/eu-sites']));
  });

  test('a badly indented commit applies nothing: the error names the commit, the file in the repository and the line', async () => {
    const generation = async () => (await t.api('GET', '/api/v1/deployments/bridge-defects-eu')).body.generation;
    const before = await generation();
    commits.push(await repo.commit({ [DEPLOYMENT]: files.badlyIndented, 'policies/placements/us-sites.yaml': files.placement.replaceAll('eu', 'us') }));
    const failed = await waitFor('the broken commit recorded', async () => {
      const s = await source();
      return s.lastError?.commit === commits[2] ? s : null;
    });
    expect(failed.lastCommit).toBe(commits[1]);
    expect(failed.lastError.problems).toEqual([{ file: DEPLOYMENT, line: 8, column: 2, field: '', message: 'All mapping items must start at the same column' }]);
    expect(failed.lastError.message).toContain(`${DEPLOYMENT}:8:2`);
    // Nothing of the commit was applied, not even the good file in it.
    expect((await t.api('GET', '/api/v1/placements/us-sites')).status).toBe(404);
    expect(await generation()).toBe(before);
    expect(euDeployments()).toBe('bridge-defects-eu@1.1.0');

    // Sync now answers with the same failure.
    const now = await t.api('POST', '/api/v1/git-sources/fleet-policy/sync');
    expect(now.status).toBe(200);
    expect(now.body).toEqual(expect.objectContaining({ outcome: 'failed', commit: commits[2] }));
    expect(now.body.error.problems[0]).toEqual(expect.objectContaining({ file: DEPLOYMENT, line: 8 }));
  });

  test('the next good commit recovers: applied, error cleared, agents follow', async () => {
    commits.push(await repo.commit({ [DEPLOYMENT]: files.deployment('1.0.0') }));
    const ok = await waitFor('recovered', async () => {
      const s = await source();
      return s.lastCommit === commits[3] && s.lastError === null ? s : null;
    });
    expect(ok.lastSyncedAt).not.toBeNull();
    expect((await t.api('GET', '/api/v1/placements/us-sites')).status).toBe(200);
    await waitFor('eu-1 back on 1.0.0', () => euDeployments() === 'bridge-defects-eu@1.0.0');
  });

  test('objects removed from git are pruned, and only the source’s own', async () => {
    expect((await t.api('POST', '/api/v1/apply?source=by-hand', files.placement.replaceAll('eu-sites', 'hand-made'))).status).toBe(200);
    commits.push(await repo.commit({ [DEPLOYMENT]: null, 'policies/placements/us-sites.yaml': null }));
    await waitFor('removal applied', async () => (await source()).lastCommit === commits[4]);
    expect((await t.api('GET', '/api/v1/deployments/bridge-defects-eu')).status).toBe(404);
    expect((await t.api('GET', '/api/v1/placements/us-sites')).status).toBe(404);
    expect((await t.api('GET', '/api/v1/placements/hand-made')).status).toBe(200);
    await waitFor('eu-1 runs nothing', () => euDeployments() === '');
  });

  test('sync now on an unchanged head applies nothing new and says so', async () => {
    const r = await t.api('POST', '/api/v1/git-sources/fleet-policy/sync');
    expect(r.status).toBe(200);
    expect(r.body).toEqual(expect.objectContaining({ outcome: 'unchanged', commit: commits[4] }));
    expect(r.body.objects.every((o: any) => o.action === 'unchanged')).toBe(true);
    expect(r.body.gitSource.lastCommit).toBe(commits[4]);
  });

  test('deleting a source refuses while other objects use its objects, then deletes it with its objects', async () => {
    const user = `apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: by-hand-serving }
spec:
  model: { name: bridge-defects, version: "1.0.0" }
  placement: eu-sites
  runtime: builtin
`;
    expect((await t.api('POST', '/api/v1/apply?source=by-hand', user)).status).toBe(200);
    const refused = await t.api('DELETE', '/api/v1/git-sources/fleet-policy');
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('git_source_objects_in_use');
    expect(refused.body.error.details.problems.map((p: any) => `${p.file} ${p.field}`)).toEqual([
      // Only the placement: the model's versions stay in the registry when the Model object goes.
      'ModelDeployment/by-hand-serving spec.placement',
    ]);
    expect((await source()).name).toBe('fleet-policy');

    expect((await t.api('POST', '/api/v1/apply?prune=true&source=by-hand', files.placement.replaceAll('eu-sites', 'hand-made'))).status).toBe(200);
    const deleted = await t.api('DELETE', '/api/v1/git-sources/fleet-policy');
    expect(deleted.status).toBe(200);
    expect(deleted.body.objects).toEqual([
      { kind: 'Model', name: 'bridge-defects', action: 'deleted' },
      { kind: 'Placement', name: 'eu-sites', action: 'deleted' },
    ]);
    expect((await t.api('GET', '/api/v1/git-sources/fleet-policy')).status).toBe(404);
    expect((await t.api('GET', '/api/v1/policy-objects')).body.items.map((o: any) => o.name)).toEqual(['hand-made']);
    const audit = (await t.api('GET', '/api/v1/audit-events?target=git-source%2Ffleet-policy&action=git-source.delete')).body.items;
    expect(audit).toHaveLength(1);
    expect(audit[0].actor).toBe('token:bootstrap-admin');
    // A later commit is not picked up: nothing follows the source any more.
    await repo.commit({ [DEPLOYMENT]: files.deployment('1.0.0') });
    expect((await t.api('POST', '/api/v1/git-sources/fleet-policy/sync')).status).toBe(404);
  });
});
