import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import pino from 'pino';
import { startLocalAgent, type LocalAgent } from '../../apps/cli/src/commands/local-agent.js';
import { createRepo, type TestRepo } from '../git/repo-kit.js';
import { runCli } from '../support/cli.js';
import { startTestHub, type TestHub } from '../support/hub.js';
import { waitFor } from '../support/wait.js';

/**
 * Findings 4, 5 and 6 of issue 12, replayed from outside against one hub
 * with its local agent (as `npm start` runs them), with the tokens an
 * operator and an admin hold. One hub for the three, to keep the suite cheap.
 */
let t: TestHub;
let agent: LocalAgent;
beforeAll(async () => {
  t = await startTestHub();
  agent = await startLocalAgent(t.hub, t.config, pino({ level: 'silent' }));
}, 60_000);
afterAll(async () => {
  await agent?.stop();
  await t?.stop();
});

/**
 * Finding 4 of issue 12 from outside: an operator points Model versions at
 * files of the hub host and at a loopback HTTP service, deploys them to the
 * local agent (as `npm start` runs it), and reads what viewers see. Nothing
 * is read, fetched or copied, and no answer carries a hash or size of it.
 */
const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const MADE_UP = `sha256:${'0'.repeat(64)}`;

const policy = (versions: { version: string; uri: string; digest: string }[], serve: string) => `
apiVersion: flotilla.dev/v1
kind: Model
metadata: { name: probe }
spec:
  task: image-classification
  versions:
${versions.map((v) => `    - { version: "${v.version}", uri: "${v.uri}", digest: "${v.digest}", format: onnx }`).join('\n')}
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: local }
spec: { selector: { matchLabels: { flotilla.dev/local: "true" } } }
---
apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: probe }
spec: { model: { name: probe, version: "${serve}" }, placement: local, runtime: builtin }
`;

describe('artifact sources of the local agent (issue 12, finding 4)', () => {
  let internal: Server;
  let internalUrl: string;
  let internalHits = 0;

  beforeAll(async () => {
    internal = createServer((_req, res) => {
      internalHits += 1;
      res.end('internal admin page');
    });
    await new Promise<void>((resolve) => internal.listen(0, '127.0.0.1', resolve));
    internalUrl = `http://127.0.0.1:${(internal.address() as AddressInfo).port}`;
  }, 60_000);

  afterAll(async () => {
    await new Promise((resolve) => internal?.close(resolve));
  });

  /** The deployment's Ready condition once the local agent reports it refused, and everything viewers can read about the spoke. */
  const refusal = async (uri: string) => {
    const d = await waitFor(
      `${uri} refused`,
      async () => {
        const spoke = (await t.api('GET', '/api/v1/spokes/local')).body;
        const refused = (c: { reason: string; message: string }) => c.reason === 'SourceRefused' && c.message.includes(uri);
        const dep = spoke.workloads?.deployments?.find((x: { name: string; conditions?: { reason: string; message: string }[] }) => x.name === 'probe' && x.conditions?.some(refused));
        return dep ? { dep, everything: JSON.stringify([spoke, (await t.api('GET', '/api/v1/deployments/probe')).body]) } : null;
      },
      30_000,
      100,
    );
    return { message: d.dep.conditions.find((c: { reason: string; message: string }) => c.reason === 'SourceRefused' && c.message.includes(uri)).message as string, everything: d.everything };
  };

  const blobs = async () => readdir(path.join(t.home, 'local-agent', 'cache', 'blobs', 'sha256')).catch(() => [] as string[]);

  test("the hub's signing key is refused with its right digest, and not copied into the cache", async () => {
    const keyFile = path.join(t.home, 'signing-key.pem');
    const key = readFileSync(keyFile);
    const r = await t.api('POST', '/api/v1/apply', policy([{ version: '1.0.0', uri: `file://${keyFile}`, digest: sha256(key) }], '1.0.0'));
    expect(r.status).toBe(200);
    const { message, everything } = await refusal(keyFile);
    expect(message).toMatch(/rule artifact-root.*outside the agent's artifact roots.*nothing was read.*--artifact-root/);
    expect(everything).not.toContain(`${key.length} bytes`);
    expect(await blobs()).not.toContain(sha256(key).slice(7));
  });

  test('file:///etc/shadow with a made-up digest reveals no hash or size', async () => {
    const r = await t.api('POST', '/api/v1/apply', policy([{ version: '2.0.0', uri: 'file:///etc/shadow', digest: MADE_UP }], '2.0.0'));
    expect(r.status).toBe(200);
    const { message, everything } = await refusal('/etc/shadow');
    expect(message).toContain('/etc/shadow is outside');
    expect(everything).not.toMatch(/got sha256:|\(\d+ bytes\)/);
    if (existsSync('/etc/shadow')) {
      try {
        expect(everything).not.toContain(sha256(readFileSync('/etc/shadow')));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EACCES') throw err;
      }
    }
  });

  test('http://127.0.0.1:<port>/ is refused and never asked', async () => {
    const r = await t.api('POST', '/api/v1/apply', policy([{ version: '3.0.0', uri: `${internalUrl}/admin`, digest: MADE_UP }], '3.0.0'));
    expect(r.status).toBe(200);
    const { message } = await refusal(internalUrl);
    expect(message).toMatch(/rule artifact-host.*127\.0\.0\.1.*loopback, link-local or private/);
    expect(internalHits).toBe(0);
  });
});

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
  let repo: TestRepo;
  let operator: string;
  let remote: Server;
  let remoteUrl: string;
  const MARKER = 'INTERNAL-SERVICE-SECRET-7f3a';

  const names = async () => (await t.api('GET', '/api/v1/policy-objects?source=git%3Apol')).body.items.map((o: { name: string }) => o.name).sort();

  beforeAll(async () => {
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

  test('the CLI says who owns an object and deletes it only with --force', async () => {
    const env = { FLOTILLA_URL: t.hub.apiUrl, FLOTILLA_TOKEN: t.adminToken };
    const refused = await runCli(['delete', 'placement', 'eu'], env);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain('Placement/eu (owned by git:pol)');
    const forced = await runCli(['delete', 'placement', 'eu', '--force'], env);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toContain('came from git source "pol"');
    expect(await names()).toEqual(['us']);
    await t.api('POST', '/api/v1/git-sources/pol/sync', undefined, operator);
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
