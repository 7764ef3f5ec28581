import { startTestHub, type TestHub } from '../support/hub.js';
import { DIGEST_1 } from '../support/fleet-kit.js';

const model = (name: string) => `
apiVersion: flotilla.dev/v1
kind: Model
metadata: { name: ${name} }
spec:
  task: image-classification
  versions:
    - { version: "1.0.0", uri: "file:///models/${name}/model.onnx", digest: "${DIGEST_1}", format: onnx }
`;
const placement = (name: string) => `
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: ${name} }
spec:
  selector: { matchLabels: { team: ${name} } }
`;
const docs = (...d: string[]) => d.join('\n---\n');

describe('prune per source', () => {
  let t: TestHub;

  beforeAll(async () => {
    t = await startTestHub();
  }, 60_000);
  afterAll(async () => {
    await t?.stop();
  });

  const objects = async () =>
    ((await t.api('GET', '/api/v1/policy-objects')).body.items as { kind: string; name: string; source: string }[]).map((o) => `${o.kind}/${o.name} ${o.source}`);

  test('prune deletes only the objects of that source missing from the body', async () => {
    expect((await t.api('POST', '/api/v1/apply?source=team-a', docs(model('a-model'), placement('a-one'), placement('a-two')))).status).toBe(200);
    expect((await t.api('POST', '/api/v1/apply?source=team-b', docs(model('b-model'), placement('b-one')))).status).toBe(200);
    expect((await t.api('POST', '/api/v1/apply', placement('by-hand'))).status).toBe(200);

    const r = await t.api('POST', '/api/v1/apply?prune=true&source=team-a', docs(model('a-model'), placement('a-one')));
    expect(r.status).toBe(200);
    expect(r.body.objects).toEqual([
      { kind: 'Model', name: 'a-model', action: 'unchanged' },
      { kind: 'Placement', name: 'a-one', action: 'unchanged' },
      { kind: 'Placement', name: 'a-two', action: 'deleted' },
    ]);
    expect(await objects()).toEqual([
      'Model/a-model team-a',
      'Model/b-model team-b',
      'Placement/a-one team-a',
      'Placement/b-one team-b',
      'Placement/by-hand api:bootstrap-admin',
    ]);
    const audit = await t.api('GET', '/api/v1/audit-events?action=policy.delete');
    expect(audit.body.items.map((e: { target: string; details: { source: string } }) => [e.target, e.details.source])).toEqual([['Placement/a-two', 'team-a']]);
  });

  test('without prune nothing is deleted; prune without a source is refused', async () => {
    const before = await objects();
    expect((await t.api('POST', '/api/v1/apply?source=team-b', model('b-model'))).status).toBe(200);
    expect(await objects()).toEqual(before);
    const r = await t.api('POST', '/api/v1/apply?prune=true', model('b-model'));
    expect(r.status).toBe(400);
    expect(r.body.error.details.problems).toEqual([{ field: 'source', message: 'required with prune' }]);
  });

  test('a prune that would leave a dangling reference is refused whole', async () => {
    const dep = `
apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: b-serving }
spec:
  model: { name: b-model, version: "1.0.0" }
  placement: a-one
  runtime: builtin
`;
    expect((await t.api('POST', '/api/v1/apply?source=team-b', dep)).status).toBe(200);
    const before = await objects();
    const r = await t.api('POST', '/api/v1/apply?prune=true&source=team-a', model('a-model'));
    expect(r.status).toBe(400);
    expect(r.body.error.details.problems).toEqual([expect.objectContaining({ file: 'ModelDeployment/b-serving', field: 'spec.placement', message: expect.stringContaining('unknown placement "a-one"') })]);
    expect(await objects()).toEqual(before);
  });

  test('several files in one JSON body: each error names its own file and line', async () => {
    const r = await t.api('POST', '/api/v1/apply?dryRun=true', {
      files: [
        { file: 'models/a.yaml', text: model('a-model') },
        { file: 'placements/bad.yaml', text: 'apiVersion: flotilla.dev/v1\nkind: Placement\nmetadata: { name: x }\nspec:\n  selector: {}\n  colour: red\n' },
      ],
    });
    expect(r.status).toBe(400);
    expect(r.body.error.details.problems).toEqual([{ file: 'placements/bad.yaml', line: 6, column: 3, field: 'spec.colour', message: 'unknown field "colour"' }]);
    const malformed = await t.api('POST', '/api/v1/apply', { files: [{ file: 'a.yaml' }] });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.details.problems).toEqual([expect.objectContaining({ field: 'files.0.text' })]);
  });
});
