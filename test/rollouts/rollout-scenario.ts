import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { formatRollout } from '../../apps/cli/src/commands/rollout.js';
import { type HubProcess, startHubProcess } from '../bench/hub-process.js';
import { createTestDatabase } from '../support/database.js';
import { DEPLOYMENT, LoadGenerator, type ApiCall, type ProcessFleet, VERSIONS, rolloutPolicy, servingVersions, startProcessFleet } from '../support/rollout-fleet.js';
import { startScratchPostgres } from '../support/scratch-postgres.js';
import { waitFor } from '../support/wait.js';

/**
 * `npm run rollouts [-- --agents N]`: the full rollout scenario with real
 * processes. A hub in its own process (killed with SIGKILL mid-rollout and
 * started again), N agents with the process runtime (default 10, one of them
 * the canary), real inference servers and a load generator. Checks, in order:
 * a good version through canary and waves with a hub kill -9 in the middle
 * (the rollout continues from the same wave); pause holds the next wave and
 * resume continues; a version that errors stops in the canary wave and rolls
 * back (the others never get it); a version that never becomes Ready fails on
 * its deadline and rolls back; abort rolls back; an offline spoke waits as
 * Pending and does not fail the rollout before the deadline. Prints each
 * check as it passes and exits non-zero on the first that does not.
 */

const args = process.argv.slice(2);
const AGENTS = Number(args[args.indexOf('--agents') + 1] ?? 10) || 10;
const log = pino({ level: process.env.FLOTILLA_TEST_LOG ?? 'silent' });
const ADMIN = `scenario-admin-${randomBytes(8).toString('hex')}`;
const policy = (version: string) => rolloutPolicy({ version, maxConcurrency: '30%', minSuccessTime: '5s', progressDeadline: '60s' });

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function check(ok: boolean, what: string, detail = ''): void {
  if (!ok) throw new Error(`FAILED: ${what}${detail ? `\n${detail}` : ''}`);
  process.stdout.write(`  ok  ${what}\n`);
}

async function main(): Promise<void> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const started = Date.now();
  try {
    // The inference server is the one in dist/ (`npm run rollouts` builds first).
    let databaseUrl: string;
    if (process.env.FLOTILLA_TEST_DATABASE_URL) {
      const db = await createTestDatabase();
      cleanups.push(() => db.drop());
      databaseUrl = db.url;
    } else {
      const scratch = await startScratchPostgres();
      cleanups.push(() => scratch.stop());
      const admin = new pg.Client({ connectionString: scratch.url });
      await admin.connect();
      await admin.query('CREATE DATABASE flotilla');
      await admin.end();
      const u = new URL(scratch.url);
      u.pathname = '/flotilla';
      databaseUrl = u.toString();
    }
    const home = await mkdtemp(path.join(os.tmpdir(), 'flotilla-rollout-scenario-'));
    cleanups.push(() => rm(home, { recursive: true, force: true }));
    const apiPort = await freePort();
    const env = {
      FLOTILLA_HOME: home,
      DATABASE_URL: databaseUrl,
      FLOTILLA_API_HOST: '127.0.0.1',
      FLOTILLA_API_PORT: String(apiPort),
      FLOTILLA_MQTT_HOST: '127.0.0.1',
      FLOTILLA_MQTT_PORT: String(await freePort()),
      FLOTILLA_ADMIN_TOKEN: ADMIN,
      FLOTILLA_LOG_LEVEL: 'warn',
      FLOTILLA_TELEMETRY_INTERVAL: '5',
    };
    let hub: HubProcess = await startHubProcess(env, apiPort);
    cleanups.push(() => hub.stop());
    const api: ApiCall = async (method, route, body) => {
      const headers: Record<string, string> = { authorization: `Bearer ${ADMIN}` };
      let payload: string | undefined;
      if (typeof body === 'string') [payload, headers['content-type']] = [body, 'application/yaml'];
      else if (body !== undefined) [payload, headers['content-type']] = [JSON.stringify(body), 'application/json'];
      const res = await fetch(hub.apiUrl + route, { method, headers, body: payload });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    };
    const apply = async (version: string) => {
      const r = await api('POST', '/api/v1/apply', policy(version));
      if (r.status !== 200) throw new Error(`apply ${version}: ${r.status} ${JSON.stringify(r.body)}`);
    };
    const rollout = async () => (await api('GET', `/api/v1/rollouts/${DEPLOYMENT}`)).body;
    const settled = (toVersion: string) => async () => {
      const r = await rollout();
      return r?.toVersion === toVersion && !r.rollingBack && r.phase !== 'Progressing' && r.phase !== 'Paused' ? r : null;
    };
    const allServing = (version: string, names: string[]) =>
      waitFor(`every spoke serving ${version}`, async () => {
        const v = await servingVersions(api);
        return names.every((n) => v.get(n) === version);
      }, 60_000, 250);

    const spokes = Array.from({ length: AGENTS }, (_, i) => ({ name: `eu-${String(i + 1).padStart(2, '0')}`, canary: i === 0 }));
    const fleet: ProcessFleet = await startProcessFleet(hub.apiUrl, api, spokes, log);
    cleanups.push(() => fleet.stop());
    await apply(VERSIONS.good1.version);
    await allServing('1.0.0', fleet.names);
    process.stdout.write(`${AGENTS} agents serving 1.0.0 after ${Math.round((Date.now() - started) / 1000)} s\n`);
    const load = new LoadGenerator(api, DEPLOYMENT, 10);
    load.start();
    cleanups.push(() => load.stop());
    const served = new Map<string, Set<string>>();
    const sampler = setInterval(() => {
      void servingVersions(api).then((m) => {
        for (const [s, v] of m) if (v) served.set(s, (served.get(s) ?? new Set()).add(v));
      }, () => undefined);
    }, 250);
    cleanups.push(async () => clearInterval(sampler));

    process.stdout.write('1. a good version through canary and waves, with the hub killed (SIGKILL) in wave 2\n');
    await apply(VERSIONS.good2.version);
    const inWave2 = await waitFor('wave 2 in progress', async () => {
      const r = await rollout();
      return r?.toVersion === '2.0.0' && r.wave === 2 && r.spokes.some((s: any) => s.wave === 2 && s.state !== 'Pending') ? r : null;
    }, 90_000, 100);
    check(inWave2.spokes.filter((s: any) => s.wave === 1).every((s: any) => s.spoke === 'eu-01' && s.state === 'Succeeded'), 'the canary wave (eu-01 alone) passed first');
    process.kill(hub.pid, 'SIGKILL');
    await waitFor('the hub to die', () => hub.exitCode() !== undefined, 10_000);
    hub = await startHubProcess(env, apiPort);
    const resumed = await rollout();
    // The agents kept running while the hub was dead, so wave 2 may just have passed: never an earlier wave, never a new rollout.
    check(
      resumed.id === inWave2.id && resumed.wave >= 2 && resumed.spokes.filter((s: any) => s.wave === 1).every((s: any) => s.state === 'Succeeded'),
      `after the restart the same rollout goes on from wave ${resumed.wave} (killed in wave 2), wave 1 still passed`,
      JSON.stringify(resumed),
    );
    const good = await waitFor('the rollout to succeed', settled('2.0.0'), 180_000, 500);
    check(good.phase === 'Succeeded' && good.spokes.every((s: any) => s.state === 'Succeeded'), `rollout Succeeded over ${good.waves} waves`, formatRollout(good));
    await allServing('2.0.0', fleet.names);

    process.stdout.write('2. pause holds the next wave, resume continues\n');
    await apply(VERSIONS.good1.version);
    await waitFor('the rollout back to 1.0.0 to start', async () => ((await rollout())?.toVersion === '1.0.0' ? true : null), 20_000, 100);
    const paused = await api('POST', `/api/v1/rollouts/${DEPLOYMENT}/pause`);
    check(paused.status === 200 && paused.body.phase === 'Paused', 'pause answered Paused');
    await waitFor('wave 1 to pass while paused', async () => ((await rollout()).spokes[0].state === 'Succeeded' ? true : null), 60_000, 250);
    await new Promise((r) => setTimeout(r, 8_000));
    const held = await rollout();
    check(held.wave === 1 && held.spokes.filter((s: any) => s.wave === 2).every((s: any) => s.state === 'Pending'), 'eight seconds after wave 1 passed, wave 2 has not started', held.message);
    check((await api('POST', `/api/v1/rollouts/${DEPLOYMENT}/resume`)).status === 200, 'resume answered 200');
    const resumedDone = await waitFor('the rollout to succeed', settled('1.0.0'), 180_000, 500);
    check(resumedDone.phase === 'Succeeded', 'after resume the rollout Succeeded', formatRollout(resumedDone));
    await allServing('1.0.0', fleet.names);

    process.stdout.write('3. a version that errors on a share of requests stops in the canary wave and rolls back\n');
    served.clear();
    await apply(VERSIONS.flaky.version);
    const flaky = await waitFor('the flaky rollout to end', settled(VERSIONS.flaky.version), 120_000, 500);
    const canary = flaky.spokes[0];
    const gate = canary.gates.find((g: any) => g.name === 'errorRatio');
    check(flaky.phase === 'RolledBack' && canary.spoke === 'eu-01' && canary.reason === 'GateFailed' && !gate.ok && gate.value > gate.threshold, `RolledBack: eu-01 failed errorRatio ${gate.value} > ${gate.threshold}`, formatRollout(flaky));
    check(fleet.names.slice(1).every((n) => !served.get(n)?.has(VERSIONS.flaky.version)), 'no other spoke ever served it');
    process.stdout.write(formatRollout(flaky).replace(/^/gm, '      ') + '\n');
    await allServing('1.0.0', fleet.names);

    process.stdout.write('4. a version that never becomes Ready fails on its deadline and rolls back\n');
    const t0 = Date.now();
    await apply(VERSIONS.neverReady.version);
    const never = await waitFor('the never-ready rollout to end', settled(VERSIONS.neverReady.version), 180_000, 500);
    check(never.phase === 'RolledBack' && never.spokes[0].reason === 'ProgressDeadlineExceeded', `RolledBack after ${Math.round((Date.now() - t0) / 1000)} s: ${never.spokes[0].message}`, formatRollout(never));
    check(never.spokes.slice(1).every((s: any) => s.state === 'Pending'), 'the other spokes never started');
    await allServing('1.0.0', fleet.names);

    process.stdout.write('5. abort rolls back the spokes the rollout moved\n');
    await apply(VERSIONS.good2.version);
    await waitFor('wave 2 in progress', async () => ((await rollout())?.wave === 2 ? true : null), 90_000, 100);
    const aborted = await api('POST', `/api/v1/rollouts/${DEPLOYMENT}/abort`);
    check(aborted.status === 200 && aborted.body.phase === 'Aborted', 'abort answered Aborted, rolling back');
    const after = await waitFor('the abort to finish', settled('2.0.0'), 120_000, 500);
    check(after.phase === 'Aborted' && after.spokes.every((s: any) => s.state === 'RolledBack' || s.state === 'Pending'), 'every moved spoke RolledBack', formatRollout(after));
    await allServing('1.0.0', fleet.names);

    process.stdout.write('6. an offline spoke waits as Pending and does not fail the rollout before the deadline\n');
    await apply(VERSIONS.good1.version); // supersedes the aborted rollout; nothing to move
    const offline = fleet.names[1] as string; // in wave 2
    await fleet.stopAgent(offline);
    await waitFor(`${offline} offline`, async () => ((await api('GET', `/api/v1/spokes/${offline}`)).body.connection === 'offline' ? true : null), 30_000, 250);
    await apply(VERSIONS.good2.version);
    const waiting = await waitFor(`${offline} waiting as Pending`, async () => {
      const r = await rollout();
      const s = r?.spokes.find((x: any) => x.spoke === offline);
      return r?.toVersion === '2.0.0' && r.wave === 2 && s?.reason === 'SpokeOffline' ? r : null;
    }, 90_000, 250);
    check(waiting.phase === 'Progressing', `${offline} Pending (SpokeOffline) while the rollout goes on Progressing`);
    await new Promise((r) => setTimeout(r, 10_000));
    check((await rollout()).phase === 'Progressing', 'ten seconds later the rollout has not failed');
    await fleet.startAgent(offline);
    const done = await waitFor('the rollout to succeed', settled('2.0.0'), 180_000, 500);
    check(done.phase === 'Succeeded', `back online, ${offline} passed and the rollout Succeeded`, formatRollout(done));
    const failures = [...load.answers.values()].reduce((n, a) => n + a.failed, 0);
    const total = [...load.answers.values()].reduce((n, a) => n + a.ok + a.failed, 0);
    process.stdout.write(`all checks passed in ${Math.round((Date.now() - started) / 1000)} s; load generator: ${total} requests, ${failures} failed\n`);
  } finally {
    for (const c of cleanups.reverse()) await c().catch((err: Error) => process.stderr.write(`cleanup: ${err.message}\n`));
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  },
);
