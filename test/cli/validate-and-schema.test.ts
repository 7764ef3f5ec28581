import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../support/cli.js';

const BAD = 'test/fixtures/policy/bad';
const noHub = { FLOTILLA_URL: '', FLOTILLA_TOKEN: '' };
const validate = (...args: string[]) => runCli(['validate', ...args], noHub);

describe('flotilla validate (offline)', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'flotilla-validate-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  test('the example repository is valid: exit 0 and a one-line summary', async () => {
    const r = await validate('-f', 'examples/policies');
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toBe('valid: 9 files, 9 objects (2 FineTuneJob, 1 Model, 3 ModelDeployment, 3 Placement)\n');
  });

  test('wrong indentation: exit 3, the file, line and column of the mis-indented key', async () => {
    const r = await validate('-f', `${BAD}/bad-indentation.yaml`);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(`${BAD}/bad-indentation.yaml:9:2 All mapping items must start at the same column\nflotilla: 1 problem in 1 of 1 file\n`);
  });

  test('an unknown field: exit 3, its file:line and the field path', async () => {
    const r = await validate('-f', `${BAD}/unknown-field.yaml`);
    expect(r.code).toBe(3);
    expect(r.stderr.split('\n')[0]).toBe(`${BAD}/unknown-field.yaml:10:3 spec.replica: unknown field "replica"`);
  });

  test('a dangling reference: exit 3, each referring field with file:line', async () => {
    const r = await validate('-f', `${BAD}/dangling-reference.yaml`);
    expect(r.code).toBe(3);
    expect(r.stderr.split('\n').slice(0, 2)).toEqual([
      `${BAD}/dangling-reference.yaml:19:43 spec.model.version: model "bridge-defects" has no version "2.0.0"; known: 1.0.0`,
      `${BAD}/dangling-reference.yaml:20:14 spec.placement: unknown placement "eu-gpu-sitez"; no Placement is defined`,
    ]);
  });

  test('a directory of bad files reports every problem of every file at once', async () => {
    const r = await validate('-f', BAD);
    expect(r.code).toBe(3);
    const lines = r.stderr.trimEnd().split('\n');
    const summary = lines.pop();
    expect(summary).toMatch(/^flotilla: \d+ problems in 8 of 8 files$/);
    for (const l of lines) expect(l).toMatch(new RegExp(`^${BAD}/[a-z-]+\\.yaml:\\d+:\\d+ `));
    expect(new Set(lines.map((l) => l.split(':')[0])).size).toBe(8);
  });

  test('references to models registered on the hub can be left to the hub with --no-references', async () => {
    const dep = path.join(tmp, 'deployment.yaml');
    await writeFile(
      dep,
      'apiVersion: flotilla.dev/v1\nkind: ModelDeployment\nmetadata: { name: d }\nspec:\n  model: { name: registered, version: "1" }\n  placement: p\n  runtime: builtin\n',
    );
    const strict = await validate('-f', dep);
    expect({ code: strict.code, stderr: strict.stderr }).toEqual({ code: 3, stderr: expect.stringContaining('spec.model.name: unknown model "registered"') });
    const r = await validate('-f', dep, '--no-references');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('valid: 1 file, 1 object (1 ModelDeployment)\n');
  });

  test('JSON files and several -f are read alike; dot directories and other files are skipped', async () => {
    const dir = path.join(tmp, 'mixed');
    await mkdir(path.join(dir, '.git'), { recursive: true });
    await writeFile(path.join(dir, '.git', 'junk.yaml'), ': not policy');
    await writeFile(path.join(dir, 'notes.md'), '# notes');
    await writeFile(path.join(dir, 'placement.json'), JSON.stringify({ apiVersion: 'flotilla.dev/v1', kind: 'Placement', metadata: { name: 'p' }, spec: { selector: {} } }));
    const r = await validate('-f', dir, '-f', 'examples/policies/models');
    expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: 'valid: 2 files, 2 objects (1 Model, 1 Placement)\n' });
  });

  test('usage mistakes exit 2, a directory without policy files exits 3', async () => {
    expect((await validate()).code).toBe(2);
    const missing = await validate('-f', path.join(tmp, 'nope'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no such file or directory');
    await mkdir(path.join(tmp, 'empty'));
    const empty = await validate('-f', path.join(tmp, 'empty'));
    expect(empty.code).toBe(3);
    expect(empty.stderr).toContain('no policy files');
    expect((await validate('--frobnicate')).code).toBe(2);
  });
});

describe('flotilla schema', () => {
  test('prints the JSON Schema of the policy kinds, or writes it to a file', async () => {
    const r = await runCli(['schema'], noHub);
    expect(r.code).toBe(0);
    const schema = JSON.parse(r.stdout);
    expect(schema.$schema).toMatch(/json-schema\.org/);
    expect(JSON.stringify(schema)).toContain('ModelDeployment');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-schema-'));
    try {
      const file = path.join(dir, 'flotilla.schema.json');
      const w = await runCli(['schema', '-o', file], noHub);
      expect(w.code).toBe(0);
      expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(schema);
      const bad = await runCli(['schema', '-o', path.join(dir, 'no', 'such', 'dir', 'x.json')], noHub);
      expect(bad.code).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
