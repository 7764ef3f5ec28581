import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../support/cli.js';
import { startTestHub, type TestHub } from '../support/hub.js';
import { waitFor } from '../support/wait.js';

/** Tests that run the CLI several times: each run starts Node afresh, seconds apiece on a loaded machine. */
const MANY_RUNS_MS = 300_000;

const MODEL = `apiVersion: flotilla.dev/v1
kind: Model
metadata: { name: gauge-reader }
spec:
  task: image-classification
  versions:
    - { version: "1.0.0", uri: "file:///models/gauge-reader-1.0.0.onnx", digest: "sha256:${'ab'.repeat(32)}", format: onnx }
`;
const PLACEMENT = `apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: plant-floor }
spec: { selector: { matchLabels: { zone: plant-floor } } }
`;
const DEPLOYMENT = `apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: gauge-reader-inference }
spec: { model: { name: gauge-reader, version: "1.0.0" }, placement: plant-floor, runtime: builtin }
`;

describe('flotilla delete against a hub', () => {
  let t: TestHub;
  let tmp: string;
  let env: Record<string, string>;
  const cli = (...args: string[]) => runCli(args, env);
  const exited = (r: { code: number; stderr: string }, code: number) => expect({ code: r.code, ...(r.code === code ? {} : { stderr: r.stderr }) }).toEqual({ code });
  const objects = async () => ((await t.api('GET', '/api/v1/policy-objects')).body.items as { kind: string; name: string }[]).map((o) => `${o.kind}/${o.name}`).sort();
  const deletions = async () =>
    (await t.hub.dataSource.query(`SELECT target, actor, before_digest, after_digest FROM audit_events WHERE action = 'policy.delete' ORDER BY target`)) as {
      target: string;
      actor: string;
      before_digest: string | null;
      after_digest: string | null;
    }[];
  const desiredGeneration = async () => (await t.api('GET', '/api/v1/spokes/line-3')).body.desiredGeneration as number;

  beforeAll(async () => {
    t = await startTestHub();
    env = { FLOTILLA_URL: t.hub.apiUrl, FLOTILLA_TOKEN: t.adminToken };
    tmp = await mkdtemp(path.join(os.tmpdir(), 'flotilla-delete-'));
    await t.hub.dataSource.query(`INSERT INTO spokes (name, labels, presence, last_seen_at, mqtt_username) VALUES ('line-3', '{"zone":"plant-floor"}'::jsonb, 'online', now(), 'line-3.test')`);
  }, 60_000);

  afterAll(async () => {
    await t?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  beforeEach(async () => {
    // Every test starts from the three objects applied.
    const applied = await t.api('POST', '/api/v1/apply', `${MODEL}---\n${PLACEMENT}---\n${DEPLOYMENT}`);
    expect(applied.status).toBe(200);
  });

  test('a placement a deployment still uses is refused with 409, naming the referrer; nothing is deleted or audited', async () => {
    const r = await cli('delete', 'placement', 'plant-floor');
    exited(r, 4);
    expect(r.stderr).toContain('Placement/plant-floor is still used by ModelDeployment/gauge-reader-inference (spec.placement)');
    const api = await t.api('DELETE', '/api/v1/policy-objects/Placement/plant-floor');
    expect(api.status).toBe(409);
    expect(api.body.error).toMatchObject({ code: 'still_referenced', details: { referrers: [{ target: 'Placement/plant-floor', referrer: 'ModelDeployment/gauge-reader-inference', field: 'spec.placement' }] } });
    // A Model object is not what a deployment depends on: its versions are registry rows that no delete removes.
    const model = await cli('delete', 'model', 'gauge-reader', '--dry-run');
    exited(model, 0);
    expect(await objects()).toEqual(['Model/gauge-reader', 'ModelDeployment/gauge-reader-inference', 'Placement/plant-floor']);
    expect(await deletions()).toEqual([]);
  }, MANY_RUNS_MS);

  test('delete -f --dry-run shows what each spoke would lose and changes nothing', async () => {
    const file = path.join(tmp, 'dry.yaml');
    await writeFile(file, `${PLACEMENT}---\n${DEPLOYMENT}`);
    const before = await desiredGeneration();
    const r = await cli('delete', '-f', file, '--dry-run');
    exited(r, 0);
    expect(r.stdout).toContain('Objects (dry run, nothing changed):');
    expect(r.stdout).toMatch(/-\s+ModelDeployment\/gauge-reader-inference\s+deleted/);
    expect(r.stdout).toMatch(/-\s+Placement\/plant-floor\s+deleted/);
    expect(r.stdout).toContain('1 spoke would change:\n  line-3\n    - deployment/gauge-reader-inference\n');
    expect(await objects()).toHaveLength(3);
    expect(await deletions()).toEqual([]);
    expect(await desiredGeneration()).toBe(before);
  }, MANY_RUNS_MS);

  test('delete -f removes the objects named in the files together (referrer and referred), audits each with no after digest, and re-renders the spoke', async () => {
    const file = path.join(tmp, 'both.yaml');
    // The file's specs do not matter, only kind and name: an outdated spec still deletes.
    await writeFile(file, `${PLACEMENT}---\n${DEPLOYMENT.replace('runtime: builtin', 'runtime: no-such-runtime')}`);
    await waitFor('the deployment rendered for line-3', async () => (await desiredGeneration()) > 0);
    const before = await desiredGeneration();
    const r = await cli('delete', '-f', file);
    exited(r, 0);
    expect(r.stdout).toMatch(/-\s+ModelDeployment\/gauge-reader-inference\s+deleted/);
    expect(r.stdout).toContain('1 spoke changed:\n  line-3\n    - deployment/gauge-reader-inference\n');
    expect(await objects()).toEqual(['Model/gauge-reader']);
    expect(await deletions()).toEqual([
      { target: 'ModelDeployment/gauge-reader-inference', actor: 'token:bootstrap-admin', before_digest: expect.stringMatching(/^sha256:/), after_digest: null },
      { target: 'Placement/plant-floor', actor: 'token:bootstrap-admin', before_digest: expect.stringMatching(/^sha256:/), after_digest: null },
    ]);
    // The hub renders the fleet again: line-3's desired state loses the deployment.
    await waitFor('line-3 re-rendered', async () => (await desiredGeneration()) > before);
    const [state] = await t.hub.dataSource.query(`SELECT d.payload FROM desired_states d JOIN spokes s ON s.id = d.spoke_id WHERE s.name = 'line-3'`);
    expect(state.payload.deployments).toEqual([]);
    await t.hub.dataSource.query(`DELETE FROM audit_events WHERE action = 'policy.delete'`);
  }, MANY_RUNS_MS);

  test('delete KIND NAME takes kinds in any case and plural, and KIND/NAME; several names go all or nothing', async () => {
    exited(await cli('delete', 'Deployments', 'gauge-reader-inference'), 0);
    expect(await objects()).toEqual(['Model/gauge-reader', 'Placement/plant-floor']);
    const missing = await cli('delete', 'placement', 'plant-floor', 'no-such-placement');
    exited(missing, 4);
    expect(missing.stderr).toContain('Placement/no-such-placement does not exist; nothing was deleted');
    expect(await objects()).toEqual(['Model/gauge-reader', 'Placement/plant-floor']);
    const ignored = await cli('delete', 'placement/plant-floor', 'PLACEMENT/no-such-placement', '--ignore-not-found');
    exited(ignored, 0);
    expect(ignored.stdout).toContain('Placement/no-such-placement not found (ignored)');
    exited(await cli('delete', 'model/gauge-reader'), 0);
    expect(await objects()).toEqual([]);
    await t.hub.dataSource.query(`DELETE FROM audit_events WHERE action = 'policy.delete'`);
  }, MANY_RUNS_MS);

  test('usage errors exit 2, unreadable files exit 3 before the hub is asked, an operator is refused (403: exit 4)', async () => {
    const unknown = await cli('delete', 'spoke', 'line-3');
    exited(unknown, 2);
    expect(unknown.stderr).toContain('unknown kind "spoke"; one of model, placement, deployment, job');
    exited(await cli('delete', 'placement'), 2);
    exited(await cli('delete'), 2);
    const bad = path.join(tmp, 'bad.yaml');
    await writeFile(bad, `${PLACEMENT}---\napiVersion: flotilla.dev/v1\nkind: Gadget\nmetadata: { name: x }\n`);
    const invalid = await runCli(['delete', '-f', bad], { ...env, FLOTILLA_URL: 'http://127.0.0.1:9' });
    exited(invalid, 3);
    expect(invalid.stderr).toContain(`${bad}:6:1 kind: expected one of Model, Placement, ModelDeployment, FineTuneJob, got "Gadget"`);
    const operator = (await t.api('POST', '/api/v1/api-tokens', { name: 'delete-operator', role: 'operator' })).body.token;
    const refused = await runCli(['delete', 'deployment', 'gauge-reader-inference'], { ...env, FLOTILLA_TOKEN: operator });
    exited(refused, 4);
    expect(refused.stderr).toContain('it needs admin');
    expect(await objects()).toHaveLength(3);
  }, MANY_RUNS_MS);
});
