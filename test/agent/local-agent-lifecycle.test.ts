import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { findFreePort } from '../../apps/hub/src/common/ports.js';
import { isAlive } from '../../apps/agent/src/runtime/process/os-process.js';
import { runCli } from '../support/cli.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { waitFor } from '../support/wait.js';

const MODEL = path.resolve('test/fixtures/models/linear-classifier-1.0.0.onnx');
const POLICY = `
apiVersion: flotilla.dev/v1
kind: Model
metadata: { name: bridge-defects }
spec:
  task: image-classification
  versions: [{ version: "1.0.0", uri: "file://${MODEL}", digest: "sha256:9a3065dbe5e11b744789cb652460f85cfdb705fa5f4e45a9776f06cdf7ec2ab9", format: onnx }]
---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: local }
spec: { selector: { matchLabels: { flotilla.dev/local: "true" } } }
---
apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: bridge-defects-inference }
spec: { model: { name: bridge-defects, version: "1.0.0" }, placement: local, runtime: builtin }
`;

/**
 * The local agent that `flotilla hub` runs: its /metrics (printed in the
 * banner, on the port remembered in $FLOTILLA_HOME/local-agent), and what
 * Ctrl-C says about the workloads that keep running, which
 * `flotilla agent stop-workloads` then stops.
 */
describe('the local agent of flotilla hub', () => {
  let db: TestDatabase;
  let home: string;
  let hub: ChildProcess;
  let api: string;
  let output = '';
  let rememberedPort: number;
  let workloadPid: number | undefined;
  const token = 'local-agent-lifecycle-token-0123456789';

  const call = async (method: string, route: string, body?: string) => {
    const r = await fetch(api + route, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/yaml' }, body });
    return { status: r.status, body: (await r.json()) as any };
  };

  beforeAll(async () => {
    db = await createTestDatabase();
    home = await mkdtemp(path.join(os.tmpdir(), 'flotilla-local-lifecycle-'));
    const [apiPort, mqttPort] = [await findFreePort(), await findFreePort()];
    rememberedPort = await findFreePort();
    // As a previous start would have left it.
    await mkdir(path.join(home, 'local-agent'), { recursive: true, mode: 0o700 });
    await writeFile(path.join(home, 'local-agent', 'metrics-port'), `${rememberedPort}\n`);
    api = `http://127.0.0.1:${apiPort}`;
    hub = spawn(process.execPath, ['bin/flotilla.js', 'hub'], {
      env: {
        ...process.env,
        FLOTILLA_HOME: home,
        DATABASE_URL: db.url,
        FLOTILLA_API_PORT: String(apiPort),
        FLOTILLA_API_HOST: '127.0.0.1',
        FLOTILLA_MQTT_PORT: String(mqttPort),
        FLOTILLA_MQTT_HOST: '127.0.0.1',
        FLOTILLA_ADMIN_TOKEN: token,
        FLOTILLA_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    hub.stdout!.on('data', (d) => (output += d));
    hub.stderr!.on('data', (d) => (output += d));
    await waitFor('the start banner', () => output.includes('Try: '), 90_000, 200);
  }, 120_000);

  afterAll(async () => {
    if (hub.exitCode === null && hub.signalCode === null) {
      hub.kill('SIGTERM');
      await new Promise((r) => hub.once('exit', r));
    }
    if (workloadPid !== undefined && (await isAlive(workloadPid))) process.kill(workloadPid, 'SIGKILL');
    await db.drop();
    await rm(home, { recursive: true, force: true });
  });

  test('serves the agent /metrics on the remembered port and prints it in the banner', async () => {
    const url = `http://127.0.0.1:${rememberedPort}/metrics`;
    expect(output).toContain(`\n                metrics: ${url}\n`);
    const res = await fetch(url);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('flotilla_agent_');
    expect((await readFile(path.join(home, 'local-agent', 'metrics-port'), 'utf8')).trim()).toBe(String(rememberedPort));
  });

  test('at Ctrl-C, names the workloads that keep running and how to stop them; stop-workloads stops them', async () => {
    expect((await call('POST', '/api/v1/apply', POLICY)).status).toBe(200);
    const serving = await waitFor(
      'the deployment Ready on the local spoke',
      async () => {
        const spoke = (await call('GET', '/api/v1/spokes/local')).body;
        const d = spoke.workloads?.deployments?.find((x: { name: string }) => x.name === 'bridge-defects-inference');
        return d?.phase === 'Ready' && d.endpoint ? (d as { endpoint: string }) : null;
      },
      60_000,
      200,
    );
    const before = output.length;

    hub.kill('SIGINT');
    const code = await new Promise<number | null>((r) => hub.once('exit', r));
    expect(code).toBe(0);

    const notice = output.slice(before);
    expect(notice).toContain('Workloads of the local agent keep running (the next start adopts them):');
    const row = notice.split('\n').find((l) => l.trim().startsWith('bridge-defects-inference'));
    expect(row).toBeDefined();
    const [, pid, version, endpoint] = (row as string).trim().split(/\s+/);
    expect({ version, endpoint }).toEqual({ version: '1.0.0', endpoint: serving.endpoint });
    workloadPid = Number(pid);
    expect(await isAlive(workloadPid)).toBe(true);
    expect(notice).toContain(`Stop them with: npx flotilla agent stop-workloads --state-dir ${path.join(home, 'local-agent')}`);

    const stopped = await runCli(['agent', 'stop-workloads', '--grace-period', '10'], { FLOTILLA_HOME: home });
    expect(stopped).toMatchObject({ code: 0, stdout: `stopped bridge-defects-inference (pid ${workloadPid})\n` });
    expect(await isAlive(workloadPid)).toBe(false);
  });
});
