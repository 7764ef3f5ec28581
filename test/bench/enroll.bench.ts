/**
 * `npm run bench:enroll`: enrolment at scale with FLOTILLA_BROKER_AUTH=http.
 *
 *   npm run bench:enroll -- [--spokes 10000] [--concurrency 16] [--broker rabbitmq|mosquitto]
 *                           [--auth http|mosquitto-dynsec] [--logins 200] [--database-url URL] [--out DIR]
 *
 * Enrols N spokes through the hub's API (the real `flotilla hub` process, on
 * its own Postgres) and reports the rate per block of 1,000: with the broker
 * asking the hub (http auth), an enrolment writes one row and touches no
 * broker, so the last block should go as fast as the first. Then spokes from
 * the first and the last block log in to the broker (RabbitMQ asks the hub's
 * hooks), to show a login costs the same whatever the fleet size.
 * `--auth mosquitto-dynsec --broker mosquitto` runs the same enrolments with
 * the dynamic-security provisioner, for comparison.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { startScratchPostgres } from '../support/scratch-postgres.js';
import { startMosquitto } from '../support/mosquitto.js';
import { findRabbitMq, newRabbitCluster, startRabbit } from '../support/rabbitmq.js';
import { freeTcpPort } from '../support/hub-replicas.js';
import { startHubProcess } from './hub-process.js';
import { procAvailable, sampleProcess } from './proc-stats.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..', '..');

const { values: args } = parseArgs({
  options: {
    spokes: { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '16' },
    broker: { type: 'string', default: 'rabbitmq' },
    auth: { type: 'string', default: 'http' },
    logins: { type: 'string', default: '200' },
    block: { type: 'string', default: '1000' },
    'database-url': { type: 'string' },
    out: { type: 'string', default: path.join(repoRoot, 'test', 'bench', 'results') },
  },
  strict: true,
});
const N = Number(args.spokes);
const C = Number(args.concurrency);
const BLOCK = Number(args.block);
const LOGINS = Number(args.logins);
const BROKER = args.broker as 'rabbitmq' | 'mosquitto';
const AUTH = args.auth as 'http' | 'mosquitto-dynsec';
if (![N, C, BLOCK].every((n) => Number.isInteger(n) && n > 0) || !Number.isInteger(LOGINS) || LOGINS < 0) throw new Error('--spokes, --concurrency, --block and --logins must be whole numbers');
if (BROKER !== 'rabbitmq' && BROKER !== 'mosquitto') throw new Error('--broker must be rabbitmq or mosquitto');
if (AUTH !== 'http' && AUTH !== 'mosquitto-dynsec') throw new Error('--auth must be http or mosquitto-dynsec');
if (AUTH === 'mosquitto-dynsec' && BROKER !== 'mosquitto') throw new Error('--auth mosquitto-dynsec needs --broker mosquitto');

const log = (msg: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : NaN;
};

async function main(): Promise<void> {
  const cleanups: Array<() => Promise<void>> = [];
  try {
    const admin = `bench-admin-${randomBytes(12).toString('hex')}`;
    let databaseUrl = args['database-url'];
    if (!databaseUrl) {
      const scratch = await startScratchPostgres();
      cleanups.unshift(() => scratch.stop());
      databaseUrl = scratch.url;
    }
    const hookPort = await freeTcpPort();
    const secret = randomBytes(24).toString('base64url');
    const hubPassword = randomBytes(18).toString('base64url');
    const env: Record<string, string> = {
      DATABASE_URL: databaseUrl,
      FLOTILLA_ADMIN_TOKEN: admin,
      FLOTILLA_HOME: await mkdtemp(path.join(os.tmpdir(), 'flotilla-bench-enroll-')),
      FLOTILLA_LOG_LEVEL: 'warn',
      FLOTILLA_BROKER_AUTH: AUTH,
    };
    cleanups.push(() => rm(env.FLOTILLA_HOME!, { recursive: true, force: true }));
    let mqttUrl: string;
    let brokerPid: () => number | null = () => null;
    let brokerLabel: string;
    if (BROKER === 'rabbitmq') {
      const found = findRabbitMq();
      if (!found.ok) throw new Error(found.reason);
      log('starting a private RabbitMQ node (MQTT plugin, HTTP auth backend)');
      const node = await startRabbit({ cluster: newRabbitCluster(1), index: 0, hooks: { baseUrl: `http://127.0.0.1:${hookPort}`, secret }, readyTimeoutMs: 240_000 });
      cleanups.unshift(async () => {
        await node.stop();
        await node.remove();
      });
      mqttUrl = node.mqttUrl;
      brokerLabel = 'RabbitMQ 3.10 (Debian), MQTT plugin, rabbitmq_auth_backend_http -> hub';
      Object.assign(env, { FLOTILLA_BROKER_KIND: 'rabbitmq', FLOTILLA_AMQP_URL: node.amqpUrl, FLOTILLA_BROKER_ADMIN_URL: node.adminUrl });
    } else {
      const m = await startMosquitto({ dynsec: AUTH === 'mosquitto-dynsec' });
      cleanups.unshift(() => m.stop());
      mqttUrl = m.url;
      brokerPid = () => m.pid();
      brokerLabel = AUTH === 'mosquitto-dynsec' ? 'Mosquitto 2 with dynamic security' : 'Mosquitto 2 (open; the hooks are asked by no broker here)';
      if (AUTH === 'mosquitto-dynsec') Object.assign(env, { FLOTILLA_MQTT_USERNAME: m.adminUsername, FLOTILLA_MQTT_PASSWORD: m.adminPassword });
    }
    env.MQTT_URL = mqttUrl;
    if (AUTH === 'http') Object.assign(env, { FLOTILLA_MQTT_USERNAME: 'flotilla-hub', FLOTILLA_MQTT_PASSWORD: hubPassword, FLOTILLA_BROKER_HOOK_SECRET: secret, FLOTILLA_BROKER_HOOK_PORT: String(hookPort) });
    const apiPort = await freeTcpPort();
    env.FLOTILLA_API_PORT = String(apiPort);
    const hub = await startHubProcess(env, apiPort);
    cleanups.unshift(async () => void (await hub.stop()));
    log(`hub ready (pid ${hub.pid}); broker: ${brokerLabel}`);
    const api = async (method: string, route: string, body?: unknown, token: string | null = admin) => {
      const res = await fetch(hub.apiUrl + route, {
        method,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json().catch(() => null)) as any };
    };
    const tok = await api('POST', '/api/v1/enrollment-tokens', { uses: N, expiresInSeconds: 86_400 });
    if (tok.status !== 201) throw new Error(`enrolment token: ${tok.status} ${JSON.stringify(tok.body)}`);

    const hubCpu = () => (procAvailable ? (sampleProcess(hub.pid)?.cpuSeconds ?? 0) : 0);
    const brokerCpu = () => {
      const pid = brokerPid();
      return pid && procAvailable ? (sampleProcess(pid)?.cpuSeconds ?? null) : null;
    };
    const done: { i: number; at: number; ms: number }[] = [];
    // Hub CPU seconds at each block boundary: on a shared machine, CPU per enrolment says more than wall time.
    const blockCpu: number[] = [];
    const creds = new Map<number, { clientId: string; username: string; password: string }>();
    let next = 0;
    const failures: string[] = [];
    const cpu0 = hubCpu();
    const b0 = brokerCpu();
    const t0 = performance.now();
    log(`enrolling ${N} spokes, ${C} at a time`);
    await Promise.all(
      Array.from({ length: C }, async () => {
        for (;;) {
          const i = next++;
          if (i >= N) return;
          const s = performance.now();
          const r = await api('POST', '/api/v1/enroll', { token: tok.body.token, name: `enr-${String(i).padStart(5, '0')}`, labels: { region: ['eu', 'us', 'apac'][i % 3]! } }, null);
          const e = performance.now();
          if (r.status !== 201) {
            failures.push(`${i}: ${r.status}`);
            continue;
          }
          done.push({ i, at: e - t0, ms: e - s });
          if (done.length % BLOCK === 0) blockCpu.push(hubCpu());
          if (i < LOGINS / 2 || i >= N - LOGINS / 2) creds.set(i, r.body.mqtt);
          if (done.length % BLOCK === 0) log(`  ${done.length} enrolled (${((done.length / (e - t0)) * 1000).toFixed(0)}/s so far)`);
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const hubCpuSeconds = hubCpu() - cpu0;
    const b1 = brokerCpu();
    // Blocks in completion order: block k holds the k-th thousand enrolments to finish.
    done.sort((a, b) => a.at - b.at);
    const blocks = [];
    for (let k = 0; k * BLOCK < done.length; k++) {
      const part = done.slice(k * BLOCK, (k + 1) * BLOCK);
      const start = k === 0 ? 0 : done[k * BLOCK - 1]!.at;
      const end = part.at(-1)!.at;
      const cpuFrom = k === 0 ? cpu0 : blockCpu[k - 1];
      const cpuTo = blockCpu[k];
      const hubCpuMsPerSpoke = cpuFrom !== undefined && cpuTo !== undefined && procAvailable ? ((cpuTo - cpuFrom) * 1000) / part.length : null;
      blocks.push({ block: k + 1, spokes: part.length, perSecond: part.length / ((end - start) / 1000), p50Ms: pct(part.map((p) => p.ms), 50), p99Ms: pct(part.map((p) => p.ms), 99), hubCpuMsPerSpoke });
    }
    const first = blocks[0]!;
    const last = blocks.at(-1)!;
    log(`enrolled ${done.length} in ${seconds.toFixed(1)} s: first block ${first.perSecond.toFixed(0)}/s, last ${last.perSecond.toFixed(0)}/s (ratio ${(last.perSecond / first.perSecond).toFixed(2)})`);

    // Logins through the broker, from the first and the last block (RabbitMQ asks the hub's hooks).
    const loginMs: { early: number[]; late: number[] } = { early: [], late: [] };
    let loginFailures = 0;
    for (const [i, c] of creds) {
      const s = performance.now();
      const ok = await new Promise<boolean>((resolve) => {
        const client = mqtt.connect(mqttUrl, { clientId: c.clientId, username: c.username, password: c.password, reconnectPeriod: 0, connectTimeout: 10_000, clean: true });
        client.once('connect', () => {
          client.end(true);
          resolve(true);
        });
        client.once('error', () => {
          client.end(true);
          resolve(false);
        });
      });
      if (!ok) loginFailures++;
      else (i < N / 2 ? loginMs.early : loginMs.late).push(performance.now() - s);
    }
    const result = {
      at: new Date().toISOString(),
      command: `npm run bench:enroll -- --spokes ${N} --concurrency ${C} --broker ${BROKER} --auth ${AUTH} --logins ${LOGINS}`,
      broker: brokerLabel,
      auth: AUTH,
      spokes: N,
      enrolled: done.length,
      failures: failures.length,
      seconds,
      perSecond: done.length / seconds,
      hubCpuSeconds,
      brokerCpuSeconds: b0 !== null && b1 !== null ? b1 - b0 : null,
      blocks,
      flatness: last.perSecond / first.perSecond,
      logins: {
        attempted: creds.size,
        failures: loginFailures,
        earlyP50Ms: pct(loginMs.early, 50),
        earlyP99Ms: pct(loginMs.early, 99),
        lateP50Ms: pct(loginMs.late, 50),
        lateP99Ms: pct(loginMs.late, 99),
      },
      machine: { cpus: os.cpus().length, node: process.version },
    };
    await mkdir(args.out!, { recursive: true });
    const base = path.join(args.out!, `enroll-${AUTH}-${BROKER}-${N}`);
    await writeFile(`${base}.json`, JSON.stringify(result, null, 2) + '\n');
    const md = [
      `# Enrolment at scale: ${N} spokes, ${AUTH} auth, ${BROKER}`,
      '',
      `Command: \`${result.command}\` (${result.at}, ${result.machine.cpus} CPUs shared with other work, Node ${result.machine.node}).`,
      `Broker: ${brokerLabel}.`,
      '',
      `Load average at the end: ${os.loadavg().map((l) => l.toFixed(1)).join(', ')}.`,
      '',
      `Enrolled ${done.length} of ${N} in ${seconds.toFixed(1)} s (${result.perSecond.toFixed(0)}/s; ${failures.length} failures); hub CPU ${hubCpuSeconds.toFixed(1)} s${result.brokerCpuSeconds !== null ? `, broker CPU ${result.brokerCpuSeconds.toFixed(1)} s` : ''}.`,
      `Last block / first block rate: **${result.flatness.toFixed(2)}**.`,
      '',
      '| block | spokes | per second | p50 ms | p99 ms | hub CPU ms per spoke |',
      '|---:|---:|---:|---:|---:|---:|',
      ...blocks.map((b) => `| ${b.block} | ${b.spokes} | ${b.perSecond.toFixed(0)} | ${b.p50Ms.toFixed(1)} | ${b.p99Ms.toFixed(1)} | ${b.hubCpuMsPerSpoke === null ? '-' : b.hubCpuMsPerSpoke.toFixed(1)} |`),
      '',
      `Broker logins afterwards (${creds.size} spokes, ${loginFailures} refused): first block p50 ${result.logins.earlyP50Ms.toFixed(1)} ms, p99 ${result.logins.earlyP99Ms.toFixed(1)} ms; last block p50 ${result.logins.lateP50Ms.toFixed(1)} ms, p99 ${result.logins.lateP99Ms.toFixed(1)} ms.`,
      '',
    ].join('\n');
    await writeFile(`${base}.md`, md);
    console.log(md);
    if (failures.length) console.error(`enrolment failures (first 10): ${failures.slice(0, 10).join(', ')}`);
  } finally {
    for (const c of cleanups) await c().catch((err: Error) => console.error(`cleanup: ${err.message}`));
  }
}

main().catch((err: Error) => {
  console.error(err);
  process.exitCode = 1;
});
