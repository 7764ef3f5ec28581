import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import pino from 'pino';
import { startLocalAgent, type LocalAgent } from '../../apps/cli/src/commands/local-agent.js';
import { startTestHub, type TestHub } from '../support/hub.js';
import { waitFor } from '../support/wait.js';

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
  let t: TestHub;
  let agent: LocalAgent;
  let internal: Server;
  let internalUrl: string;
  let internalHits = 0;

  beforeAll(async () => {
    t = await startTestHub();
    agent = await startLocalAgent(t.hub, t.config, pino({ level: 'silent' }));
    internal = createServer((_req, res) => {
      internalHits += 1;
      res.end('internal admin page');
    });
    await new Promise<void>((resolve) => internal.listen(0, '127.0.0.1', resolve));
    internalUrl = `http://127.0.0.1:${(internal.address() as AddressInfo).port}`;
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    await t?.stop();
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
