import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startHubProcess } from '../bench/hub-process.js';
import { sampleProcess } from '../bench/proc-stats.js';
import { createTestDatabase } from '../support/database.js';

/**
 * `npm run security:replay`: findings 1, 2 and 3 of the security issue
 * replayed from outside against a real `flotilla hub` process, printing the
 * figures the tests cannot assert (RSS, latencies). Needs Linux (/proc) and
 * FLOTILLA_TEST_DATABASE_URL (a Postgres to create a scratch database on).
 */

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function remainingLength(n: number): Buffer {
  const bytes: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    bytes.push(b);
  } while (n > 0);
  return Buffer.from(bytes);
}

/** A CONNECT announcing `announced` bytes, then as much body as the broker reads in `ms`. Resolves with when it was closed. */
function hugeConnect(port: number, announced: number, ms: number): Promise<{ closedAfterMs: number | null; sentBytes: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    let sent = 0;
    const socket = net.connect(port, '127.0.0.1');
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    const pump = () => {
      while (!socket.destroyed && Date.now() - started < ms) {
        sent += chunk.length;
        if (!socket.write(chunk)) return socket.once('drain', pump);
      }
    };
    socket.on('connect', () => {
      socket.write(Buffer.concat([Buffer.from([0x10]), remainingLength(announced)]));
      pump();
    });
    socket.on('error', () => undefined);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ closedAfterMs: null, sentBytes: sent });
    }, ms);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ closedAfterMs: Date.now() - started, sentBytes: sent });
    });
  });
}

const mib = (b: number) => Math.round((b / 1024 / 1024) * 10) / 10;

async function main(): Promise<void> {
  const db = await createTestDatabase();
  const home = await mkdtemp(path.join(os.tmpdir(), 'flotilla-replay-'));
  const apiPort = await freePort();
  const mqttPort = await freePort();
  const adminToken = 'replay-admin-token-0123456789abcdef';
  const hub = await startHubProcess(
    {
      FLOTILLA_HOME: home,
      DATABASE_URL: db.url,
      FLOTILLA_API_PORT: String(apiPort),
      FLOTILLA_API_HOST: '127.0.0.1',
      FLOTILLA_MQTT_PORT: String(mqttPort),
      FLOTILLA_MQTT_HOST: '127.0.0.1',
      FLOTILLA_ADMIN_TOKEN: adminToken,
      FLOTILLA_LOG_LEVEL: 'warn',
    },
    apiPort,
  );
  const report: Record<string, unknown> = {};
  try {
    // Finding 1: four unauthenticated CONNECTs announcing 250 MiB, each pushing body for 3 s.
    await new Promise((r) => setTimeout(r, 2_000));
    const before = sampleProcess(hub.pid)!;
    const conns = await Promise.all(Array.from({ length: 4 }, () => hugeConnect(mqttPort, 250 * 1024 * 1024, 3_000)));
    await new Promise((r) => setTimeout(r, 1_000));
    const after = sampleProcess(hub.pid)!;
    report.finding1 = {
      connections: conns,
      rssBeforeMiB: mib(before.rssBytes),
      rssAfterMiB: mib(after.rssBytes),
      rssGrowthMiB: mib(after.rssBytes - before.rssBytes),
      peakRssMiB: mib(after.peakRssBytes),
    };

    // Finding 2: 200 failed authentications at once from this address, with the valid token among them.
    const call = (token: string) =>
      fetch(`${hub.apiUrl}/api/v1/models`, { headers: { authorization: `Bearer ${token}` } }).then(async (r) => {
        await r.arrayBuffer();
        return r.status;
      });
    const storm = Array.from({ length: 200 }, (_, i) => call(`flt_wrong-${i}`));
    const valid = Array.from({ length: 20 }, () => call(adminToken));
    const stormStatuses = await Promise.all(storm);
    const validStatuses = await Promise.all(valid);
    const spoofed = await fetch(`${hub.apiUrl}/api/v1/models`, { headers: { authorization: 'Bearer flt_x', 'x-forwarded-for': '203.0.113.9' } });
    report.finding2 = {
      storm: { '401': stormStatuses.filter((s) => s === 401).length, '429': stormStatuses.filter((s) => s === 429).length },
      validTokenStatuses: [...new Set(validStatuses)],
      rotatedXForwardedFor: spoofed.status,
    };

    // Finding 3: a 4 MB YAML list on dryRun apply while /readyz is probed every 10 ms.
    const body = `apiVersion: flotilla.dev/v1\nkind: Placement\nmetadata: {name: big}\nspec:\n  selector:\n    matchExpressions:\n${'- x\n'.repeat(1_000_000)}`;
    const latencies: number[] = [];
    let running = true;
    const probe = (async () => {
      while (running) {
        const t0 = performance.now();
        const r = await fetch(`${hub.apiUrl}/readyz`);
        await r.arrayBuffer();
        latencies.push(performance.now() - t0);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    await new Promise((r) => setTimeout(r, 100));
    const rssBefore3 = sampleProcess(hub.pid)!.rssBytes;
    const t0 = performance.now();
    const res = await fetch(`${hub.apiUrl}/api/v1/apply?dryRun=true`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/yaml' },
      body,
    });
    const answer = await res.text();
    const rejectedMs = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 100));
    running = false;
    await probe;
    const rssAfter3 = sampleProcess(hub.pid)!.rssBytes;
    latencies.sort((a, b) => a - b);
    report.finding3 = {
      bodyBytes: body.length,
      status: res.status,
      answerBytes: answer.length,
      message: (JSON.parse(answer) as { error?: { message?: string } }).error?.message,
      rejectedAfterMs: Math.round(rejectedMs),
      readyz: { probes: latencies.length, p50Ms: Math.round(latencies[Math.floor(latencies.length / 2)] ?? 0), maxMs: Math.round(latencies[latencies.length - 1] ?? 0) },
      rssGrowthMiB: mib(rssAfter3 - rssBefore3),
    };
  } finally {
    await hub.stop();
    await db.drop();
    await rm(home, { recursive: true, force: true });
  }
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
