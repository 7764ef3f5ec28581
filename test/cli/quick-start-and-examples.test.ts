import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../support/cli.js';
import { startTestHub, type TestHub } from '../support/hub.js';

/** The policy the README's first deployment writes to /tmp/local.yaml, with $PWD expanded as the shell would. */
async function quickStartYaml(): Promise<string> {
  const readme = await readFile('README.md', 'utf8');
  const m = /cat > \/tmp\/local\.yaml <<EOF\n([\s\S]*?)\nEOF\n/.exec(readme);
  if (!m) throw new Error('README.md no longer has the quick start heredoc `cat > /tmp/local.yaml <<EOF ... EOF`');
  return m[1]!.replaceAll('$PWD', process.cwd());
}

interface ApplyResult {
  objects: { kind: string; name: string; action: string }[];
}

describe('the README quick start and examples/policies on one hub', () => {
  let t: TestHub;
  let tmp: string;
  let quickStart: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    t = await startTestHub();
    env = { FLOTILLA_URL: t.hub.apiUrl, FLOTILLA_TOKEN: t.adminToken };
    tmp = await mkdtemp(path.join(os.tmpdir(), 'flotilla-quick-start-'));
    quickStart = path.join(tmp, 'local.yaml');
    await writeFile(quickStart, await quickStartYaml());
  }, 60_000);

  afterAll(async () => {
    await t?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  const apply = async (file: string): Promise<ApplyResult> => {
    const r = await runCli(['apply', '-f', file, '-o', 'json'], env);
    expect({ file, code: r.code, stderr: r.stderr }).toEqual({ file, code: 0, stderr: '' });
    return JSON.parse(r.stdout) as ApplyResult;
  };
  /** Every object the second apply touched must be new: nothing of the first is redefined (a model version above all). */
  const onlyCreated = (r: ApplyResult) => expect(r.objects.filter((o) => o.action !== 'created')).toEqual([]);

  test.each([
    ['quick start, then the examples', () => quickStart, () => 'examples/policies'],
    ['the examples, then the quick start', () => 'examples/policies', () => quickStart],
  ])('%s: the second apply only creates objects, and both sets stay as written', async (_, first, second) => {
    const a = await apply(first());
    onlyCreated(a);
    const b = await apply(second());
    onlyCreated(b);
    const names = (await t.api('GET', '/api/v1/policy-objects?kind=Model')).body.items.map((o: { name: string; generation: number }) => [o.name, o.generation]);
    expect(names).toEqual([
      ['bridge-defects', 1],
      ['concrete-defects', 1],
    ]);
    // Both deployments still name versions that exist with the digests their files give.
    const deployments = (await t.api('GET', '/api/v1/deployments')).body.items.map((d: { name: string; placement: { found: boolean } }) => [d.name, d.placement.found]);
    expect(deployments).toEqual(expect.arrayContaining([['bridge-defects-inference', true], ['bridge-defects-eu', true]]));
    // Clean up with the delete this CLI offers, so the reverse order starts from nothing.
    const cleared = await runCli(['delete', '-f', quickStart, '-f', 'examples/policies'], env);
    expect({ code: cleared.code, stderr: cleared.stderr }).toEqual({ code: 0, stderr: '' });
    expect((await t.api('GET', '/api/v1/policy-objects')).body.items).toEqual([]);
  }, 300_000);
});
