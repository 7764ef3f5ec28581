/**
 * `npm run bench:agent`: one real agent's idle footprint, measured from
 * outside (agent-footprint.ts), beside Node's own floor.
 *
 *   npm run bench:agent -- [--settle-seconds 40] [--cpu-seconds 60] [--runtime process|none]
 *                          [--database-url URL] [--node-arg FLAG]... [--no-probe] [--out DIR]
 *
 * Starts a hub of its own (`flotilla hub --no-local-agent`, embedded broker, a
 * Postgres started here unless --database-url names a server), creates an
 * enrolment token, then enrols and runs the agent. --node-arg runs the agent
 * with extra Node flags instead of its defaults, to compare them.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startScratchPostgres } from '../support/scratch-postgres.js';
import { measureIdleAgent, measureIdleNode } from './agent-footprint.js';
import { startHubProcess, type HubProcess } from './hub-process.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..', '..');

const { values: args } = parseArgs({
  options: {
    'settle-seconds': { type: 'string', default: '40' },
    'cpu-seconds': { type: 'string', default: '60' },
    runtime: { type: 'string', default: 'process' },
    'database-url': { type: 'string' },
    'node-arg': { type: 'string', multiple: true, default: [] },
    'no-probe': { type: 'boolean', default: false },
    out: { type: 'string', default: path.join(repoRoot, 'test', 'bench', 'results') },
  },
  strict: true,
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no free port'))));
    });
  });
}

const log = (s: string) => process.stderr.write(`${s}\n`);

async function main(): Promise<void> {
  const runtime = args.runtime === 'none' ? 'none' : 'process';
  const work = await mkdtemp(path.join(os.tmpdir(), 'flotilla-bench-agent-'));
  const cleanups: Array<() => Promise<unknown>> = [];
  let hub: HubProcess | null = null;
  try {
    let databaseUrl: string;
    if (args['database-url']) {
      const base = args['database-url'];
      const name = `flotilla_bench_agent_${randomBytes(4).toString('hex')}`;
      const admin = new pg.Client({ connectionString: base });
      await admin.connect();
      await admin.query(`CREATE DATABASE ${name}`);
      await admin.end();
      const u = new URL(base);
      u.pathname = `/${name}`;
      databaseUrl = u.toString();
      cleanups.push(async () => {
        const c = new pg.Client({ connectionString: base });
        await c.connect();
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await c.end();
      });
    } else {
      const scratch = await startScratchPostgres();
      cleanups.push(() => scratch.stop());
      databaseUrl = scratch.url;
    }
    const adminToken = `bench-admin-${randomBytes(16).toString('hex')}`;
    const apiPort = await freePort();
    hub = await startHubProcess(
      {
        FLOTILLA_HOME: path.join(work, 'hub'),
        DATABASE_URL: databaseUrl,
        FLOTILLA_API_HOST: '127.0.0.1',
        FLOTILLA_API_PORT: String(apiPort),
        FLOTILLA_MQTT_HOST: '127.0.0.1',
        FLOTILLA_MQTT_PORT: String(await freePort()),
        FLOTILLA_TLS: 'off',
        FLOTILLA_ADMIN_TOKEN: adminToken,
        FLOTILLA_LOG_LEVEL: 'warn',
      },
      apiPort,
    );
    log(`hub ready (pid ${hub.pid}) at ${hub.apiUrl}`);
    const res = await fetch(`${hub.apiUrl}/api/v1/enrollment-tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ uses: 2, expiresInSeconds: 3600 }),
    });
    if (!res.ok) throw new Error(`creating an enrolment token: ${res.status} ${await res.text()}`);
    const { token } = (await res.json()) as { token: string };

    const settleMs = Number(args['settle-seconds']) * 1000;
    const cpuWindowMs = Number(args['cpu-seconds']) * 1000;
    const nodeArgs = args['node-arg'];
    log(`agent (${runtime} runtime${nodeArgs.length ? `, node ${nodeArgs.join(' ')}` : ''}): ${settleMs / 1000} s settle, then CPU over ${cpuWindowMs / 1000} s idle`);
    const agent = await measureIdleAgent({ hubUrl: hub.apiUrl, token, runtime, settleMs, cpuWindowMs, nodeArgs, probe: !args['no-probe'], workDir: work });
    const floor = await measureIdleNode(nodeArgs);
    const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
    const result = {
      when: new Date().toISOString(),
      node: process.version,
      cpus: os.cpus().length,
      loadAverage: load,
      runtime,
      agent,
      nodeFloor: floor,
    };
    const rows = [
      ['idle agent RSS after settle', `${agent.rssMiB.toFixed(1)} MiB`],
      ['idle agent peak RSS (VmHWM)', `${agent.hwmMiB.toFixed(1)} MiB`],
      ['idle agent CPU', `${agent.cpuPercent.toFixed(2)} % of one core over ${agent.cpuWindowSeconds.toFixed(0)} s`],
      ['idle agent V8 heap used', agent.heapUsedMiB === null ? 'n/a' : `${agent.heapUsedMiB.toFixed(1)} MiB`],
      ['modules loaded (probe run)', agent.modules === null ? 'n/a' : String(agent.modules)],
      ['Node floor (setInterval only)', `${floor.rssMiB.toFixed(1)} MiB`],
    ];
    process.stdout.write(`\n| ${runtime} runtime agent, Node ${process.version}, load ${load} | |\n|---|---|\n${rows.map(([k, v]) => `| ${k} | ${v} |`).join('\n')}\n`);
    if (agent.packages) {
      const top = Object.entries(agent.packages).sort((a, b) => b[1] - a[1]);
      process.stdout.write(`\npackages loaded (modules each): ${top.map(([p, n]) => `${p} ${n}`).join(', ')}\n`);
    }
    const outDir = path.resolve(args.out);
    await mkdir(outDir, { recursive: true });
    const file = path.join(outDir, `agent-idle-${runtime}.json`);
    await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
    log(`\nwritten ${file}`);
  } finally {
    await hub?.stop();
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
