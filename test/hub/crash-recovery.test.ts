import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { findFreePort } from '../../apps/hub/src/common/ports.js';
import { readPostmasterLock, processRuns } from '../../apps/hub/src/database/postmaster-lock.js';
import { waitFor } from '../support/wait.js';

/**
 * The real `flotilla hub` (bin/flotilla.js, built) with its embedded
 * Postgres, killed the hard way: the hub with SIGKILL (its Postgres is
 * orphaned and must be recovered by the next start), and the postmaster
 * with SIGKILL under a running hub (which must restart it).
 */
describe('embedded Postgres after a crash', () => {
  let home: string;
  let api: string;
  let env: NodeJS.ProcessEnv;
  let hub: ChildProcess | null = null;
  let output = '';

  const startHub = () => {
    output = '';
    const child = spawn(process.execPath, ['bin/flotilla.js', 'hub', '--no-local-agent'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    hub = child;
    return child;
  };
  const readyz = async () => {
    const r = await fetch(`${api}/readyz`);
    return { status: r.status, body: (await r.json()) as { status: string; checks: Record<string, boolean>; down?: string[] } };
  };
  const waitReady = (what: string, ms: number) =>
    waitFor(
      what,
      async () => {
        if (hub?.exitCode !== null) throw new Error(`the hub exited (${hub?.exitCode}): ${output.slice(-2000)}`);
        return (await readyz()).status === 200;
      },
      ms,
      100,
    );
  const token = async () => (await readFile(path.join(home, 'admin-token'), 'utf8')).trim();
  const call = async (method: string, route: string, body?: unknown) => {
    const r = await fetch(api + route, {
      method,
      headers: { authorization: `Bearer ${await token()}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: r.status, body: (await r.json()) as any };
  };
  const dataDir = () => path.join(home, 'postgres');
  const exited = (child: ChildProcess) => new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));

  beforeAll(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'flotilla-crash-'));
    const [apiPort, mqttPort] = [await findFreePort(), await findFreePort()];
    api = `http://127.0.0.1:${apiPort}`;
    env = {
      ...process.env,
      FLOTILLA_HOME: home,
      FLOTILLA_API_PORT: String(apiPort),
      FLOTILLA_API_HOST: '127.0.0.1',
      FLOTILLA_MQTT_PORT: String(mqttPort),
      FLOTILLA_MQTT_HOST: '127.0.0.1',
      FLOTILLA_HTTPS_PORT: String(await findFreePort()),
      FLOTILLA_MQTTS_PORT: String(await findFreePort()),
      FLOTILLA_LOG_FORMAT: 'json',
    };
    delete env.DATABASE_URL;
    delete env.MQTT_URL;
  });

  afterAll(async () => {
    if (hub && hub.exitCode === null) {
      hub.kill('SIGTERM');
      await exited(hub);
    }
    // Whatever a failed assertion left running must not outlive the test.
    const lock = await readPostmasterLock(dataDir());
    if (lock && (await processRuns(lock.pid))) process.kill(lock.pid, 'SIGINT');
    await waitFor('the embedded Postgres to stop', async () => !lock || !(await processRuns(lock.pid)), 20_000);
    await rm(home, { recursive: true, force: true });
  });

  test('a hub killed with SIGKILL leaves its Postgres running, and the next start stops that orphan and comes up by itself', async () => {
    startHub();
    await waitReady('the first start', 45_000);
    expect((await call('POST', '/api/v1/models', { name: 'kept-through-a-crash' })).status).toBe(201);
    const orphan = await readPostmasterLock(dataDir());
    expect(orphan).not.toBeNull();

    // A second hub on the same FLOTILLA_HOME must not take the running one's Postgres away.
    const second = spawn(process.execPath, ['bin/flotilla.js', 'hub', '--no-local-agent'], {
      env: {
        ...env,
        FLOTILLA_API_PORT: String(await findFreePort()),
        FLOTILLA_MQTT_PORT: String(await findFreePort()),
        FLOTILLA_HTTPS_PORT: String(await findFreePort()),
        FLOTILLA_MQTTS_PORT: String(await findFreePort()),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let secondErr = '';
    second.stderr.on('data', (c: Buffer) => (secondErr += c.toString()));
    await exited(second);
    expect(second.exitCode).toBe(1);
    expect(secondErr).toContain(`flotilla: another Flotilla hub (pid ${hub!.pid}) is running with this data (`);
    expect(secondErr).not.toMatch(/TypeError|\n\s+at /);
    expect((await readyz()).status).toBe(200);

    hub!.kill('SIGKILL');
    await exited(hub!);
    // What made the next start die with a TypeError before: the postmaster outlives its hub.
    expect(await processRuns(orphan!.pid)).toBe(true);

    const started = Date.now();
    startHub();
    await waitReady('the start after the crash', 45_000);
    expect(Date.now() - started).toBeLessThan(45_000);
    expect(output).not.toContain('TypeError');
    expect(output).toContain(`Postgres pid ${orphan!.pid} outlived the hub that started it`);
    expect(await processRuns(orphan!.pid)).toBe(false);
    expect((await call('GET', '/api/v1/models/kept-through-a-crash')).status).toBe(200);
  }, 100_000);

  test('a postmaster killed with SIGKILL under the running hub is restarted: /readyz is 503 naming the database meanwhile, then 200, and the API works again', async () => {
    if (!hub || hub.exitCode !== null) {
      startHub();
      await waitReady('the hub', 45_000);
    }
    const before = await readPostmasterLock(dataDir());
    expect(before?.status).toBe('ready');
    process.kill(before!.pid, 'SIGKILL');

    const down = await waitFor('/readyz to report the database down', async () => {
      const r = await readyz();
      return r.status === 503 ? r.body : null;
    }, 10_000, 20);
    expect(down.checks.database).toBe(false);
    expect(down.down).toEqual(['database']);

    await waitReady('/readyz to be green again', 30_000);
    const after = await readPostmasterLock(dataDir());
    expect(after?.pid).not.toBe(before!.pid);
    expect((await call('POST', '/api/v1/models', { name: 'made-after-the-restart' })).status).toBe(201);
    expect((await call('GET', '/api/v1/models/made-after-the-restart')).status).toBe(200);
    expect(output).toContain('exited unexpectedly');

    // A clean stop takes the restarted Postgres down with the hub, and leaves no secret behind.
    hub!.kill('SIGTERM');
    await exited(hub!);
    expect(hub!.exitCode).toBe(0);
    expect(await processRuns(after!.pid)).toBe(false);
    expect((await readdir(os.tmpdir())).filter((f) => f.startsWith('flotilla-initdb-'))).toEqual([]);
  }, 100_000);

  test('a hub and its Postgres both killed with SIGKILL leave a stale postmaster.pid, which the next start removes', async () => {
    startHub();
    await waitReady('the hub', 45_000);
    const lock = await readPostmasterLock(dataDir());
    hub!.kill('SIGKILL');
    process.kill(lock!.pid, 'SIGKILL');
    await exited(hub!);
    await waitFor('the postmaster to be gone', async () => !(await processRuns(lock!.pid)), 10_000);
    expect(await readPostmasterLock(dataDir())).toEqual(lock);

    startHub();
    await waitReady('the start after both were killed', 45_000);
    expect(output).toContain(`removed the stale ${path.join(dataDir(), 'postmaster.pid')} (pid ${lock!.pid} no longer runs)`);
    expect((await call('GET', '/api/v1/models/made-after-the-restart')).status).toBe(200);
  }, 100_000);
});
