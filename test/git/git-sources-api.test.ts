import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { startTestHub, type TestHub } from '../support/hub.js';
import { waitFor } from '../support/wait.js';
import { DIGEST_1 } from '../support/fleet-kit.js';
import { createRepo, hasGitBinary, startGitHttpServer, type TestRepo } from './repo-kit.js';

const placement = (name: string) => `apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: ${name} }
spec:
  selector: { matchLabels: { region: eu } }
`;

describe('git sources API', () => {
  let t: TestHub;
  let repo: TestRepo;

  beforeAll(async () => {
    t = await startTestHub();
    repo = await createRepo();
    await repo.commit({ 'placements/eu.yaml': placement('eu') });
  }, 60_000);
  afterAll(async () => {
    await t?.stop();
    await repo?.remove();
  });

  const get = async (name: string) => (await t.api('GET', `/api/v1/git-sources/${name}`)).body;

  test('bad bodies are refused with every field named', async () => {
    const r = await t.api('POST', '/api/v1/git-sources', { name: 'Bad_Name', url: 'ftp://example.com/x.git', branch: 'a..b', path: '../outside', intervalSeconds: 1, colour: 'red' });
    expect(r.status).toBe(400);
    expect(r.body.error.details.problems.map((p: any) => p.field).sort()).toEqual(['', 'branch', 'intervalSeconds', 'name', 'path', 'url']);
    expect(r.body.error.message).toMatch(/unknown field\(s\): colour/);
    const relative = await t.api('POST', '/api/v1/git-sources', { name: 'x', url: 'not a url' });
    expect(relative.body.error.details.problems).toEqual([expect.objectContaining({ field: 'url' })]);
    const abs = await t.api('POST', '/api/v1/git-sources', { name: 'x', url: repo.url, path: '/etc' });
    expect(abs.body.error.details.problems).toEqual([expect.objectContaining({ field: 'path' })]);
    expect((await t.api('GET', '/api/v1/git-sources')).body.items).toEqual([]);
  });

  test('only an admin may create or delete; an operator may sync; a viewer may read', async () => {
    const operator = (await t.api('POST', '/api/v1/api-tokens', { name: 'ops', role: 'operator' })).body.token;
    const viewer = (await t.api('POST', '/api/v1/api-tokens', { name: 'eyes', role: 'viewer' })).body.token;
    expect((await t.api('POST', '/api/v1/git-sources', { name: 'denied', url: repo.url }, operator)).status).toBe(403);
    expect((await t.api('POST', '/api/v1/git-sources', { name: 'roles', url: repo.url, intervalSeconds: 3600 })).status).toBe(201);
    expect((await t.api('POST', '/api/v1/git-sources/roles/sync', undefined, viewer)).status).toBe(403);
    expect((await t.api('POST', '/api/v1/git-sources/roles/sync', undefined, operator)).status).toBe(200);
    expect((await t.api('GET', '/api/v1/git-sources/roles', undefined, viewer)).status).toBe(200);
    expect((await t.api('DELETE', '/api/v1/git-sources/roles', undefined, operator)).status).toBe(403);
    expect((await t.api('DELETE', '/api/v1/git-sources/roles')).status).toBe(200);
    expect((await t.api('POST', '/api/v1/git-sources', { name: 'dup', url: repo.url, intervalSeconds: 3600 })).status).toBe(201);
    const dup = await t.api('POST', '/api/v1/git-sources', { name: 'dup', url: repo.url });
    expect(dup.status).toBe(409);
    expect(dup.body.error.code).toBe('git_source_exists');
    await waitFor('dup synced', async () => (await get('dup')).lastCommit);
    expect((await t.api('DELETE', '/api/v1/git-sources/dup?keepObjects=true')).status).toBe(200);
    // keepObjects: the objects stay, still marked with the source that wrote them.
    expect((await t.api('GET', '/api/v1/policy-objects?source=git%3Adup')).body.items.map((o: any) => o.name)).toEqual(['eu']);
    expect((await t.api('DELETE', '/api/v1/git-sources/nope')).status).toBe(404);
    expect((await t.api('POST', '/api/v1/git-sources/nope/sync')).status).toBe(404);
    const actions = (await t.api('GET', '/api/v1/audit-events?target=git-source%2Fdup')).body.items.map((e: any) => e.action);
    expect(actions).toEqual(['git-source.delete', 'git-source.sync', 'git-source.create']);
  });

  test('an unreachable repository is recorded as the error and retried on the next interval; credentials never shown', async () => {
    const created = await t.api('POST', '/api/v1/git-sources', { name: 'unreachable', url: 'http://robot:s3cret@127.0.0.1:1/policies.git', intervalSeconds: 5 });
    expect(created.status).toBe(201);
    expect(created.body.url).toBe('http://***:***@127.0.0.1:1/policies.git');
    const first = await waitFor('the fetch error recorded', async () => (await get('unreachable')).lastError);
    expect(first).toEqual({ commit: null, message: expect.stringMatching(/^cannot fetch http:\/\/\*\*\*:\*\*\*@127\.0\.0\.1:1\/policies\.git: .*ECONNREFUSED/), problems: [], at: expect.any(String) });
    expect(JSON.stringify(await t.api('GET', '/api/v1/git-sources'))).not.toContain('s3cret');
    await waitFor('tried again', async () => (await get('unreachable')).lastError.at !== first.at);
    expect((await get('unreachable')).lastCommit).toBeNull();
    expect((await t.api('DELETE', '/api/v1/git-sources/unreachable')).status).toBe(200);
  });

  test('a path that is not a repository, a missing branch and a missing directory each name the problem', async () => {
    const cases = [
      { name: 'not-a-repo', url: pathToFileURL(path.dirname(repo.dir)).href, expected: /is not a git repository/ },
      { name: 'no-branch', url: repo.url, branch: 'release', expected: /branch "release" not found/ },
      { name: 'no-dir', url: repo.url, path: 'policies/prod', expected: /path "policies\/prod" is not a directory at commit [0-9a-f]{12}/ },
    ];
    for (const c of cases) {
      expect((await t.api('POST', '/api/v1/git-sources', { name: c.name, url: c.url, ...(c.branch ? { branch: c.branch } : {}), ...(c.path ? { path: c.path } : {}), intervalSeconds: 3600 })).status).toBe(201);
      const r = await t.api('POST', `/api/v1/git-sources/${c.name}/sync`);
      expect({ name: c.name, outcome: r.body.outcome, message: r.body.error?.message }).toEqual({ name: c.name, outcome: 'failed', message: expect.stringMatching(c.expected) });
      expect((await get(c.name)).lastError.message).toMatch(c.expected);
      await t.api('DELETE', `/api/v1/git-sources/${c.name}`);
    }
  });

  (hasGitBinary ? test : test.skip)('an http(s) repository is mirrored shallowly and followed like a local one', async () => {
    const server = await startGitHttpServer(path.dirname(repo.dir));
    try {
      const url = `${server.url}/${path.basename(repo.dir)}/.git`;
      const head = await repo.commit({ 'placements/eu.yaml': placement('eu-http') });
      expect((await t.api('POST', '/api/v1/git-sources', { name: 'over-http', url, path: 'placements', intervalSeconds: 3600 })).status).toBe(201);
      await waitFor('first fetch over http applied', async () => (await get('over-http')).lastCommit === head);
      expect((await t.api('GET', '/api/v1/placements/eu-http')).body).toEqual(expect.objectContaining({ source: 'git:over-http', commit: head }));
      const next = await repo.commit({ 'placements/eu2.yaml': placement('eu-http-2') });
      expect((await t.api('POST', '/api/v1/git-sources/over-http/sync')).body).toEqual(expect.objectContaining({ outcome: 'applied', commit: next }));
      expect((await t.api('DELETE', '/api/v1/git-sources/over-http')).body.objects.map((o: any) => o.name)).toEqual(['eu-http', 'eu-http-2']);
    } finally {
      await server.close();
    }
  });

  test('a dangling reference in a commit names the file and field in the repository', async () => {
    const dep = `apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: serving }
spec:
  model: { name: ghost, version: "1.0.0" }
  placement: eu
  runtime: builtin
`;
    const model = `apiVersion: flotilla.dev/v1
kind: Model
metadata: { name: real }
spec:
  task: x
  versions:
    - { version: "1.0.0", uri: "file:///m.onnx", digest: "${DIGEST_1}", format: onnx }
`;
    const head = await repo.commit({ 'placements/eu.yaml': placement('eu'), 'placements/eu2.yaml': null, 'deployments/serving.yaml': dep, 'models/real.yaml': model });
    expect((await t.api('POST', '/api/v1/git-sources', { name: 'dangling', url: repo.url, intervalSeconds: 3600 })).status).toBe(201);
    const r = await t.api('POST', '/api/v1/git-sources/dangling/sync');
    expect(r.body.outcome).toBe('failed');
    expect(r.body.error).toEqual(expect.objectContaining({ commit: head }));
    expect(r.body.error.problems).toEqual([{ file: 'deployments/serving.yaml', line: 5, column: 18, field: 'spec.model.name', message: 'unknown model "ghost"' }]);
    await t.api('DELETE', '/api/v1/git-sources/dangling');
  });
});

describe('stopping the hub while a fetch hangs', () => {
  test('aborts the fetch in flight instead of waiting for it', async () => {
    const t = await startTestHub();
    const requests: IncomingMessage[] = [];
    let closed = 0;
    // Accepts the request and never answers.
    const server = createServer((req) => {
      requests.push(req);
      req.socket.on('close', () => closed++);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hangs.git`;
      expect((await t.api('POST', '/api/v1/git-sources', { name: 'hangs', url, intervalSeconds: 3600 })).status).toBe(201);
      await waitFor('the fetch to reach the server', () => requests.length > 0);
      await t.stop();
      await waitFor('the hub’s connection closed', () => closed > 0);
      expect(requests).toHaveLength(1);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
