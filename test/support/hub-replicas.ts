import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSigningKeyPair, privateKeyPem } from '@flotilla/contracts';

/**
 * Hub replicas as real `flotilla hub` processes (so one can be SIGKILLed),
 * sharing one database, one broker, one admin token and one signing key.
 */

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface HubReplica {
  name: string;
  apiUrl: string;
  pid: number;
  output(): string;
  alive(): boolean;
  /** SIGKILL, no goodbye: what a crash or an OOM kill does. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** A signing key file every replica shares (agents pin its public half at enrolment). */
export async function sharedSigningKey(dir: string): Promise<string> {
  const file = path.join(dir, 'signing-key.pem');
  await writeFile(file, privateKeyPem(generateSigningKeyPair().privateKey), { mode: 0o600 });
  return file;
}

export async function startHubReplica(name: string, env: Record<string, string>, opts: { readyTimeoutMs?: number } = {}): Promise<HubReplica> {
  const apiPort = await freeTcpPort();
  const child: ChildProcess = spawn(process.execPath, [path.join(repoRoot, 'bin', 'flotilla.js'), 'hub', '--no-local-agent'], {
    env: {
      ...process.env,
      FLOTILLA_API_PORT: String(apiPort),
      FLOTILLA_API_HOST: '127.0.0.1',
      FLOTILLA_HUB_ID: name,
      FLOTILLA_LOG_FORMAT: 'json',
      FLOTILLA_LOG_LEVEL: process.env.FLOTILLA_TEST_LOG ?? 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (chunk: Buffer) => {
    out += chunk.toString('utf8');
    if (out.length > 400_000) out = out.slice(-200_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 90_000);
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`hub ${name} exited before it was ready:\n${out.slice(-4000)}`);
    if (await fetch(`${apiUrl}/readyz`).then((r) => r.ok, () => false)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`hub ${name} was not ready in time:\n${out.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    name,
    apiUrl,
    pid: child.pid!,
    output: () => out,
    alive,
    async kill() {
      if (alive()) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (!alive()) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** GET /readyz of a replica: its leader section, or null when it does not answer. */
export async function leaderOf(hub: HubReplica): Promise<{ hubId: string; leaderHubId: string | null; self: boolean; epoch: number | null } | null> {
  try {
    const res = await fetch(`${hub.apiUrl}/readyz`, { signal: AbortSignal.timeout(3_000) });
    const body = (await res.json()) as { leader?: { hubId: string; leaderHubId: string | null; self: boolean; epoch: number | null } };
    return body.leader ?? null;
  } catch {
    return null;
  }
}
