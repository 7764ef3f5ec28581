import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../support/cli.js';
import { startTestHub, type TestHub } from '../support/hub.js';
import { waitFor } from '../support/wait.js';

const BIN = path.resolve('bin/flotilla.js');
/** Tests that run the CLI a dozen times: each run starts Node afresh, seconds apiece on a loaded machine. */
const MANY_RUNS_MS = 300_000;

describe('flotilla tokens, enrollment-tokens, get -w, completion and version', () => {
  let t: TestHub;
  let tmp: string;
  let env: Record<string, string>;
  const cli = (...args: string[]) => runCli(args, env);
  const exited = (r: { code: number; stderr: string }, code: number) => expect({ code: r.code, ...(r.code === code ? {} : { stderr: r.stderr }) }).toEqual({ code });

  beforeAll(async () => {
    t = await startTestHub();
    env = { FLOTILLA_URL: t.hub.apiUrl, FLOTILLA_TOKEN: t.adminToken };
    tmp = await mkdtemp(path.join(os.tmpdir(), 'flotilla-admin-cli-'));
  }, 60_000);

  afterAll(async () => {
    await t?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  test('tokens create prints the secret once and says so; the token works with its role; list shows it without the secret; revoke ends it', async () => {
    const created = await cli('tokens', 'create', 'ci-bot', '--role', 'operator');
    exited(created, 0);
    const secret = /^Token: (\S+)$/m.exec(created.stdout)?.[1];
    expect(secret).toMatch(/^flt_/);
    expect(created.stdout).toContain('This secret is shown once');
    // The printed secret is a working operator token: it may read, and may not manage tokens.
    exited(await runCli(['get', 'spokes'], { ...env, FLOTILLA_TOKEN: secret! }), 0);
    exited(await runCli(['tokens', 'list'], { ...env, FLOTILLA_TOKEN: secret! }), 4);

    const list = await cli('tokens', 'list');
    exited(list, 0);
    expect(list.stdout.split('\n')[0]).toMatch(/^NAME\s+ROLE\s+PREFIX\s+CREATED-BY\s+AGE\s+LAST-USED\s+EXPIRES$/);
    expect(list.stdout).toMatch(/^ci-bot\s+operator\s+flt_\S+\s+token:bootstrap-admin\s+\d+s\s+\d+s ago\s+never$/m);
    expect(list.stdout).not.toContain(secret);

    exited(await cli('tokens', 'revoke', 'ci-bot'), 0);
    const after = await runCli(['get', 'spokes'], { ...env, FLOTILLA_TOKEN: secret! });
    exited(after, 4);
    expect(after.stderr).toContain('did not accept the token');
    const again = await cli('tokens', 'revoke', 'ci-bot');
    exited(again, 4);
    expect(again.stderr).toContain('API token "ci-bot" not found');
    // A role the hub does not have is a usage error; a bad duration an invalid value.
    exited(await cli('tokens', 'create', 'x', '--role', 'root'), 2);
    exited(await cli('tokens', 'create', 'x', '--role', 'viewer', '--expires', 'soon'), 3);
  }, MANY_RUNS_MS);

  test('enrollment-tokens create prints an enrol command that works as printed; list and revoke', async () => {
    const created = await cli('enrollment-tokens', 'create', '--labels', 'zone=dock,region=eu', '--uses', '2', '--expires', '2h');
    exited(created, 0);
    expect(created.stdout).toMatch(/: 2 uses, expires \S+ \(in (120m|2h)\), labels region=eu,zone=dock\./);
    const line = /^ {2}(flotilla agent enroll .*)$/m.exec(created.stdout)?.[1];
    expect(line).toMatch(new RegExp(`^flotilla agent enroll --hub ${t.hub.apiUrl} --token fle_\\S+ --name <NAME>$`));

    // Run the printed line as a site operator would, with a name and a state directory.
    const args = line!.replace('<NAME>', 'dock-7').split(' ').slice(1);
    const stateDir = path.join(tmp, 'agent-state');
    const enrolled = await runCli([...args, '--state-dir', stateDir], {});
    exited(enrolled, 0);
    expect(enrolled.stdout).toContain('enrolled as "dock-7"');
    expect((await readFile(path.join(stateDir, 'credentials.json'), 'utf8')).length).toBeGreaterThan(0);
    const spoke = await t.api('GET', '/api/v1/spokes/dock-7');
    expect(spoke.body.labels).toMatchObject({ zone: 'dock', region: 'eu' });

    const list = await cli('enrollment-tokens', 'list');
    exited(list, 0);
    expect(list.stdout.split('\n')[0]).toMatch(/^ID\s+PREFIX\s+USES-LEFT\s+EXPIRES\s+LABELS\s+CREATED-BY\s+AGE$/);
    const row = list.stdout.split('\n').find((l) => l.includes('region=eu,zone=dock'));
    expect(row).toMatch(/^[0-9a-f-]{36}\s+fle_\S+\s+1\/2\s+in \S+\s+region=eu,zone=dock\s+token:bootstrap-admin\s+\d+s$/);
    const id = row!.split(/\s+/)[0]!;
    exited(await cli('enrollment-tokens', 'revoke', id), 0);
    // The second use is gone with the token.
    const second = await runCli([...line!.replace('<NAME>', 'dock-8').split(' ').slice(1), '--state-dir', path.join(tmp, 'agent-state-2')], {});
    exited(second, 4);
    expect((await cli('enrollment-tokens', 'list')).stdout).not.toContain(id);
    exited(await cli('enrollment-tokens', 'create', '--labels', 'novalue'), 3);
  }, MANY_RUNS_MS);

  test('get spokes -w prints the table, then the row of a spoke whose labels change; Ctrl-C ends it with exit 0', async () => {
    await t.hub.dataSource.query(`INSERT INTO spokes (name, labels, presence, last_seen_at, mqtt_username) VALUES ('watch-me', '{"tier":"a"}'::jsonb, 'online', now(), 'watch-me.test')`);
    const child = spawn(process.execPath, [BIN, 'get', 'spokes', '-w', '--selector', 'tier'], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitFor('the first table', () => /watch-me\s+online.*tier=a\n/.test(stdout), 30_000);
      expect(stdout.split('\n')[0]).toMatch(/^NAME\s+CONNECTION\s+LAST-SEEN\s+GEN\s+READY\s+LABELS$/);
      const patched = await t.api('PATCH', '/api/v1/spokes/watch-me', { labels: { tier: 'b' } });
      expect(patched.status).toBe(200);
      await waitFor('the changed row', () => /watch-me\s+online.*tier=b\n/.test(stdout), 30_000);
      // Nothing else changed, so the watch printed the header, the first row and the changed one.
      expect(stdout.trimEnd().split('\n')).toEqual([expect.stringMatching(/^NAME/), expect.stringMatching(/tier=a$/), expect.stringMatching(/tier=b$/)]);
    } finally {
      child.kill('SIGINT');
    }
    expect({ code: await exit, stderr }).toEqual({ code: 0, stderr: '' });
  }, MANY_RUNS_MS);

  test('completion bash is a script bash sources, registering flotilla', async () => {
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile('bash', ['-c', `source <("${process.execPath}" "${BIN}" completion bash) && complete -p flotilla && COMP_WORDS=(flotilla tokens cr) COMP_CWORD=2 && _flotilla && echo "\${COMPREPLY[*]}"`], (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      ),
    );
    expect(r).toEqual({ code: 0, stdout: 'complete -o default -F _flotilla flotilla\ncreate\n', stderr: '' });
    exited(await cli('completion', 'fish'), 2);
  }, MANY_RUNS_MS);

  test('completion zsh registers _flotilla with compdef and offers subcommands', async () => {
    if (spawnSync('zsh', ['--version']).status !== 0) return console.warn('SKIPPED: zsh not installed (Debian package zsh)');
    const script = `autoload -U compinit && compinit -D -u; source <("${process.execPath}" "${BIN}" completion zsh); print -r -- $_comps[flotilla]; compadd() { shift; print -r -- "$*"; }; words=(flotilla tokens ''); CURRENT=3; _flotilla`;
    const r = spawnSync('zsh', ['-f', '-c', script], { encoding: 'utf8', timeout: 60_000 });
    expect({ code: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, stdout: '_flotilla\ncreate list rotate revoke help\n', stderr: '' });
  }, MANY_RUNS_MS);

  test('version prints the CLI version, and the hub version when a hub URL is set, without a token', async () => {
    const pkg = JSON.parse(await readFile('package.json', 'utf8')) as { version: string };
    const local = await runCli(['version'], { FLOTILLA_URL: '', FLOTILLA_TOKEN: '' });
    exited(local, 0);
    expect(local.stdout).toContain(`Client Version: ${pkg.version}`);
    expect(local.stdout).toContain('Hub Version:    unknown (set FLOTILLA_URL or --url to ask a hub)');
    const withHub = await runCli(['version', '-o', 'json'], { FLOTILLA_URL: t.hub.apiUrl, FLOTILLA_TOKEN: '' });
    exited(withHub, 0);
    expect(JSON.parse(withHub.stdout)).toEqual({ client: { version: pkg.version, node: expect.stringMatching(/^v\d+/) }, hub: { version: pkg.version, api: 'v1', protocol: 1, url: t.hub.apiUrl } });
    const down = await runCli(['version'], { FLOTILLA_URL: 'http://127.0.0.1:9' });
    exited(down, 1);
    expect(down.stdout).toContain(`Client Version: ${pkg.version}`);
    expect(down.stderr).toContain('cannot reach the hub at http://127.0.0.1:9');
    expect((await runCli(['--version'], {})).stdout.trim()).toBe(pkg.version);
  }, MANY_RUNS_MS);
});
