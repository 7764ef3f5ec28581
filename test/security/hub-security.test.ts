import 'reflect-metadata';
import { readFile, mkdtemp, rm, stat } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { PROTOCOL_VERSION, desiredTopic, signEnvelope, toPrivateKey, type DesiredPayload } from '@flotilla/contracts';
import { enroll, runAgent, type AgentHandle } from '../../apps/agent/src/index.js';
import { runCli } from '../support/cli.js';
import { RecordingRuntime, basePolicy } from '../support/fleet-kit.js';
import { startTestHub, type TestHub } from '../support/hub.js';
import { waitFor } from '../support/wait.js';

/**
 * Issue 12, findings 9 and 10 (TLS, signing key), replayed from outside: the
 * hub serves HTTPS and MQTT over TLS with a CA it generated; a client with the
 * CA gets in, one without is refused; plain HTTP and MQTT answer on loopback
 * only; an agent enrolled over HTTPS with the pinned CA converges over
 * mqtts://; after a signing-key rotation every agent applies new envelopes
 * and refuses envelopes signed by the old key; an enrolling agent claims only
 * the label keys its token allows, never flotilla.dev/.
 */

/** An address of this machine other than loopback (null in a sandbox without one). */
function externalAddress(): string | null {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return null;
}

/** GET over HTTPS with the given CA only (what `curl --cacert` does). */
function httpsGet(url: string, ca: string | undefined): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, ca ? { ca } : {}, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

const connectRefused = (host: string, port: number): Promise<string> =>
  new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });

const timing = { statusIntervalMs: 500, reconcileIntervalMs: 2_000, reconnect: { initialMs: 100, maxMs: 500 }, stopTimeoutMs: 500 };

describe('security: TLS, signing-key rotation and enrolment labels (issue 12, findings 7, 9 and 10)', () => {
  const external = externalAddress();
  let t: TestHub;
  let dir: string;
  let ca: string;
  let caFile: string;
  const agents = new Map<string, { handle: AgentHandle; runtime: RecordingRuntime; stateDir: string }>();

  beforeAll(async () => {
    // Plain listeners left at their defaults (loopback); the TLS ones on every interface.
    t = await startTestHub({ FLOTILLA_TLS_SAN: external ?? '' });
    dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-sec-tls-'));
    caFile = t.hub.caFile!;
    ca = await readFile(caFile, 'utf8');
  }, 60_000);

  afterAll(async () => {
    for (const a of agents.values()) await a.handle.stop();
    await t?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('HTTPS answers a client holding the hub CA, and is refused by one that does not (certificates verified)', async () => {
    expect(t.hub.httpsUrl).toMatch(/^https:\/\//);
    expect(await httpsGet(`${t.hub.httpsUrl}/healthz`, ca)).toMatchObject({ status: 200 });
    await expect(httpsGet(`${t.hub.httpsUrl}/healthz`, undefined)).rejects.toMatchObject({ code: 'SELF_SIGNED_CERT_IN_CHAIN' });
    // Private keys of the generated CA and server certificate: owner only.
    for (const f of ['ca-key.pem', 'server-key.pem']) expect(((await stat(path.join(t.home, 'tls', f))).mode & 0o777).toString(8)).toBe('600');
  });

  test('the CLI verifies the hub: --ca works, without it the untrusted certificate is refused', async () => {
    const withCa = await runCli(['get', 'spokes', '--url', t.hub.httpsUrl!, '--token', t.adminToken, '--ca', caFile, '-o', 'json']);
    expect({ code: withCa.code, stderr: withCa.stderr }).toEqual({ code: 0, stderr: '' });
    const without = await runCli(['get', 'spokes', '--url', t.hub.httpsUrl!, '--token', t.adminToken], { FLOTILLA_CA: '' });
    expect(without.code).not.toBe(0);
    expect(without.stderr).toMatch(/cannot reach the hub .*(SELF_SIGNED|certificate)/i);
  });

  test('plain HTTP and MQTT listen on loopback only; from another address only TLS answers', async () => {
    const apiPort = Number(new URL(t.hub.apiUrl).port);
    const httpsPort = Number(new URL(t.hub.httpsUrl!).port);
    const mqttsPort = Number(new URL(t.hub.mqttsUrl!).port);
    expect(await connectRefused('127.0.0.1', apiPort)).toBe('connected');
    if (external === null) {
      console.warn('no non-loopback address on this machine: the from-another-address half is not checked');
      return;
    }
    expect(await connectRefused(external, apiPort)).toBe('ECONNREFUSED');
    expect(await connectRefused(external, t.hub.mqttPort!)).toBe('ECONNREFUSED');
    expect(await connectRefused(external, mqttsPort)).toBe('connected');
    expect(await httpsGet(`https://${external}:${httpsPort}/healthz`, ca)).toMatchObject({ status: 200 });
  });

  test('an agent enrolled over HTTPS without the CA is told to bring it; with --ca it pins the CA and converges over mqtts://', async () => {
    const tok = await t.api('POST', '/api/v1/enrollment-tokens', { uses: 3, labels: { region: 'eu' } });
    await expect(enroll({ hubUrl: t.hub.httpsUrl!, token: tok.body.token, name: 'tls-1', stateDir: path.join(dir, 'untrusted') })).rejects.toThrow(
      /certificate is not trusted: pass --ca FILE/,
    );
    const stateDir = path.join(dir, 'tls-1');
    const r = await runCli(['agent', 'enroll', '--hub', t.hub.httpsUrl!, '--ca', caFile, '--token', tok.body.token, '--name', 'tls-1', '--state-dir', stateDir]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const creds = JSON.parse(await readFile(path.join(stateDir, 'credentials.json'), 'utf8'));
    expect(creds.mqtt.url).toBe(`mqtts://127.0.0.1:${new URL(t.hub.mqttsUrl!).port}`);
    expect(creds.caCertificate.trim()).toBe(ca.trim());

    // A second agent beside the hub, over loopback (as the local agent of npm start).
    const plainDir = path.join(dir, 'plain-1');
    await enroll({ hubUrl: t.hub.apiUrl, token: tok.body.token, name: 'plain-1', stateDir: plainDir });
    for (const [name, sd] of [['tls-1', stateDir], ['plain-1', plainDir]] as const) {
      const runtime = new RecordingRuntime();
      agents.set(name, { handle: await runAgent({ stateDir: sd, runtime, logger: pino({ level: 'silent' }), timing }), runtime, stateDir: sd });
    }
    expect((await t.api('POST', '/api/v1/apply', basePolicy())).status).toBe(200);
    await converged(['tls-1', 'plain-1'], 1);
    expect(agents.get('tls-1')!.handle.snapshot().connection.url).toMatch(/^mqtts:/);
    expect(agents.get('tls-1')!.runtime.deployments()).toEqual(['bridge-defects-eu@1.0.0']);
  }, 60_000);

  test('after a signing-key rotation every agent applies new envelopes, pins the new key, and refuses the old one', async () => {
    const oldKey = toPrivateKey(await readFile(path.join(t.home, 'signing-key.pem'), 'utf8'));
    const before = (await t.api('GET', '/api/v1/signing-key')).body;
    const rotated = await t.api('POST', '/api/v1/signing-key/rotate');
    expect(rotated.status).toBe(200);
    expect(rotated.body.fingerprint).not.toBe(before.fingerprint);
    expect(rotated.body.rotations).toBe(before.rotations + 1);
    // The key file holds the new key (0600), and the rotation is audited.
    expect(((await stat(path.join(t.home, 'signing-key.pem'))).mode & 0o777).toString(8)).toBe('600');
    const audit = await t.api('GET', '/api/v1/audit-events?action=signing-key.rotate');
    expect(audit.body.items[0]).toMatchObject({ actor: expect.stringContaining('bootstrap-admin'), target: 'signing-key/hub' });

    const generations = await converged(['tls-1', 'plain-1'], 1);
    expect((await t.api('POST', '/api/v1/apply', basePolicy({ version: '1.1.0' }))).status).toBe(200);
    await converged(['tls-1', 'plain-1'], Math.max(...generations) + 1);
    for (const [name, a] of agents) {
      expect({ name, deployments: a.runtime.deployments() }).toEqual({ name, deployments: ['bridge-defects-eu@1.1.0'] });
      const creds = JSON.parse(await readFile(path.join(a.stateDir, 'credentials.json'), 'utf8'));
      expect({ name, key: creds.hubPublicKey }).toEqual({ name, key: rotated.body.publicKey });
    }

    // An envelope signed by the retired key, newer than anything applied, is refused.
    const a = agents.get('plain-1')!;
    const last = a.runtime.seen.at(-1) as DesiredPayload;
    const rejectedBefore = a.handle.snapshot().envelopes.rejected;
    const forged = signEnvelope({ v: PROTOCOL_VERSION, spoke: 'plain-1', generation: 1000, issuedAt: new Date().toISOString(), payload: { ...last, deployments: [] } }, oldKey);
    await t.hub.publisher.publish(desiredTopic('plain-1'), JSON.stringify(forged), { retain: false });
    await waitFor('the forged envelope rejected', () => a.handle.snapshot().envelopes.rejected > rejectedBefore);
    expect(a.handle.snapshot().acceptedGeneration).toBeLessThan(1000);
    expect(a.handle.snapshot().conditions.find((c) => c.type === 'EnvelopeRejected')).toMatchObject({ status: 'True', reason: 'BadSignature' });
  }, 60_000);

  /* ------------------------------------------------ finding 7: labels */

  const enrol = (body: unknown) => t.api('POST', '/api/v1/enroll', body, null);

  test('an agent cannot claim a label its token does not allow, nor any flotilla.dev/ label; the refusal names the key and spends no use', async () => {
    const tok = await t.api('POST', '/api/v1/enrollment-tokens', { uses: 1, labels: { region: 'eu' } });
    const local = await enrol({ token: tok.body.token, name: 'claims-1', labels: { 'flotilla.dev/local': 'true' } });
    expect(local.status).toBe(403);
    expect(local.body.error).toMatchObject({ code: 'label_not_allowed', details: { key: 'flotilla.dev/local' } });
    expect(local.body.error.message).toContain('"flotilla.dev/local"');
    const other = await enrol({ token: tok.body.token, name: 'claims-1', labels: { tier: 'gold' } });
    expect(other.status).toBe(403);
    expect(other.body.error.message).toMatch(/label "tier" refused: .*allows none/);
    // The token's own keys may be named (its values win), and nothing was spent by the refusals.
    const ok = await enrol({ token: tok.body.token, name: 'claims-1', labels: { region: 'us' }, facts: { gpus: 2, os: 'linux' } });
    expect(ok.status).toBe(201);
    expect(ok.body.spoke.labels).toEqual({ region: 'eu' });
    // Facts the agent reported stay facts: shown apart, never labels a selector could match.
    const spoke = (await t.api('GET', '/api/v1/spokes/claims-1')).body;
    expect(spoke.labels).toEqual({ region: 'eu' });
    expect(spoke.facts).toEqual({ gpus: 2, os: 'linux' });
  });

  test('allowedLabelKeys on the token decides which keys agents may claim; "*" never reaches flotilla.dev/', async () => {
    const some = await t.api('POST', '/api/v1/enrollment-tokens', { uses: 2, allowedLabelKeys: ['site'] });
    expect(some.body.allowedLabelKeys).toEqual(['site']);
    expect((await enrol({ token: some.body.token, name: 'claims-2', labels: { site: 'lyon' } })).body.spoke.labels).toEqual({ site: 'lyon' });
    expect((await enrol({ token: some.body.token, name: 'claims-3', labels: { site: 'lyon', rack: '7' } })).body.error.details).toMatchObject({ key: 'rack' });
    const any = await t.api('POST', '/api/v1/enrollment-tokens', { uses: 2, allowedLabelKeys: ['*'] });
    expect((await enrol({ token: any.body.token, name: 'claims-4', labels: { rack: '7' } })).status).toBe(201);
    expect((await enrol({ token: any.body.token, name: 'claims-5', labels: { 'flotilla.dev/local': 'true' } })).status).toBe(403);
  });

  test('flotilla.dev/ labels cannot be stamped by an API enrolment token, allowed to agents, or patched onto a spoke', async () => {
    const stamped = await t.api('POST', '/api/v1/enrollment-tokens', { labels: { 'flotilla.dev/local': 'true' } });
    expect(stamped.status).toBe(400);
    expect(stamped.body.error.message).toContain('labels.flotilla.dev/local');
    const allowed = await t.api('POST', '/api/v1/enrollment-tokens', { allowedLabelKeys: ['flotilla.dev/local'] });
    expect(allowed.status).toBe(400);
    expect(allowed.body.error.message).toContain('allowedLabelKeys.0');
    const patched = await t.api('PATCH', '/api/v1/spokes/claims-1', { labels: { 'flotilla.dev/local': 'true' } });
    expect(patched.status).toBe(400);
    expect(patched.body.error.message).toContain('labels.flotilla.dev/local');
  });

  async function converged(names: string[], atLeast: number): Promise<number[]> {
    return waitFor(`${names.join(', ')} online and in sync at generation ${atLeast} or later`, async () => {
      const items = [];
      for (const n of names) items.push((await t.api('GET', `/api/v1/spokes/${n}`)).body);
      return items.every((s) => s.connection === 'online' && s.desiredGeneration >= atLeast && s.observedGeneration === s.desiredGeneration)
        ? items.map((s) => s.desiredGeneration as number)
        : null;
    }, 30_000);
  }
});
