import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRepo, type TestRepo } from '../git/repo-kit.js';
import { startTestHub, type TestHub } from '../support/hub.js';
import { waitFor } from '../support/wait.js';

/**
 * Findings 5 and 6 of issue 12, replayed through the API as an operator
 * would: what a git source owns survives an operator's prune, update and
 * delete; an admin's override is explicit and audited; a git source's error
 * never quotes what the remote answered.
 */
const placement = (name: string, region = 'eu') => `apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: ${name} }
spec:
  selector: { matchLabels: { region: ${region} } }
`;

describe('git ownership and git errors (issue 12, findings 5 and 6)', () => {
  let t: TestHub;
  let repo: TestRepo;
  let operator: string;
  let remote: Server;
  let remoteUrl: string;
  const MARKER = 'INTERNAL-SERVICE-SECRET-7f3a';

  const names = async () => (await t.api('GET', '/api/v1/policy-objects?source=git%3Apol')).body.items.map((o: { name: string }) => o.name).sort();

  beforeAll(async () => {
    t = await startTestHub();
    repo = await createRepo();
    await repo.commit({ 'placements/eu.yaml': placement('eu'), 'placements/us.yaml': placement('us', 'us') });
    operator = (await t.api('POST', '/api/v1/api-tokens', { name: 'ops', role: 'operator' })).body.token;
    expect((await t.api('POST', '/api/v1/git-sources', { name: 'pol', url: repo.url, intervalSeconds: 3600 })).status).toBe(201);
    await waitFor('pol synced', async () => (await t.api('GET', '/api/v1/git-sources/pol')).body.lastCommit);
    // An "internal service" that answers anything with a body the hub must never repeat.
    remote = createServer((req, res) => {
      const status = req.url?.includes('/missing/') ? 404 : 200;
      res.writeHead(status, { 'content-type': 'text/html' }).end(`<html>${MARKER} ${'x'.repeat(200)}</html>`);
    });
    await new Promise<void>((resolve) => remote.listen(0, '127.0.0.1', resolve));
    remoteUrl = `http://127.0.0.1:${(remote.address() as AddressInfo).port}`;
  }, 60_000);

  afterAll(async () => {
    await t?.stop();
    await repo?.remove();
    await new Promise((resolve) => remote?.close(resolve));
  });

  test("an operator's empty prune as the git source is refused and deletes nothing", async () => {
    expect(await names()).toEqual(['eu', 'us']);
    const r = await t.api('POST', '/api/v1/apply?prune=true&source=git:pol', [], operator);
    expect(r.status).toBe(403);
    expect(r.body.error.message).toContain('git source "pol"');
    // Not even by spelling the source differently in a JSON list body.
    const yaml = await t.api('POST', '/api/v1/apply?prune=true&source=git%3Apol', placement('other'), operator);
    expect(yaml.status).toBe(403);
    expect(await names()).toEqual(['eu', 'us']);
  });

  test('an operator cannot change a git-owned object under another source; the answer names the owner', async () => {
    const r = await t.api('POST', '/api/v1/apply', placement('eu', 'moon'), operator);
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe('owned_by_git_source');
    expect(r.body.error.details.objects).toEqual([{ kind: 'Placement', name: 'eu', owner: 'git:pol' }]);
    const dry = await t.api('POST', '/api/v1/apply?dryRun=true', placement('eu', 'moon'), operator);
    expect(dry.status).toBe(409);
    expect((await t.api('GET', '/api/v1/placements/eu')).body).toEqual(expect.objectContaining({ source: 'git:pol' }));
  });

  test('force is for admins only; an admin delete without it is refused, with it done and audited', async () => {
    expect((await t.api('POST', '/api/v1/apply?force=true', placement('eu', 'moon'), operator)).status).toBe(403);
    const refused = await t.api('DELETE', '/api/v1/policy-objects/Placement/us');
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toContain('Placement/us (owned by git:pol)');
    expect(await names()).toEqual(['eu', 'us']);

    const forced = await t.api('DELETE', '/api/v1/policy-objects/Placement/us?force=true');
    expect(forced.status).toBe(200);
    const events = (await t.api('GET', '/api/v1/audit-events?target=Placement%2Fus')).body.items;
    expect(events[0]).toEqual(expect.objectContaining({ action: 'policy.delete', details: expect.objectContaining({ force: true, overrodeOwner: 'git:pol' }) }));

    // The source's own sync puts back what its repository holds; nothing it owns was lost on the way.
    const sync = await t.api('POST', '/api/v1/git-sources/pol/sync', undefined, operator);
    expect(sync.status).toBe(200);
    expect(await names()).toEqual(['eu', 'us']);
  });

  test("a git source's error gives the status and size of the remote's answer, never its body", async () => {
    for (const [name, path, status] of [
      ['notfound', '/missing/repo.git', 'HTTP 404'],
      ['notgit', '/html/repo.git', 'git smart-HTTP'],
    ] as const) {
      expect((await t.api('POST', '/api/v1/git-sources', { name, url: `${remoteUrl}${path}`, intervalSeconds: 3600 })).status).toBe(201);
      const err = await waitFor(`${name} failed`, async () => (await t.api('GET', `/api/v1/git-sources/${name}`)).body.lastError);
      expect(err.message).toContain(status);
      expect(err.message).toMatch(/\d+ bytes/);
      const all = JSON.stringify((await t.api('GET', '/api/v1/git-sources')).body);
      expect(all).not.toContain(MARKER);
      expect(all).not.toContain('<html>');
    }
  });
});
