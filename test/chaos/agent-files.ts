import { readFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * What an agent leaves in its state directory and log, read the way an
 * operator would with `cat`: the credentials it enrolled with, the envelope
 * it stored, the process ledger, and its JSON log lines. Parsed loosely on
 * purpose: the agent is being changed while this harness measures it (intent
 * records in the ledger, new fields), and a field the harness does not know
 * must not break the measurement.
 */

export interface AgentMqttCredentials {
  spoke: string;
  url: string;
  clientId: string;
  username: string;
  password: string;
}

export interface StoredDeployment {
  name: string;
  model: string;
  version: string;
}

export interface StoredEnvelope {
  generation: number;
  deployments: StoredDeployment[];
}

export interface LedgerProcess {
  pid: number | null;
  instanceId: string | null;
  deployment: string | null;
  modelName: string | null;
  modelVersion: string | null;
  port: number | null;
  role: string | null;
  drainUntil: number | null;
  /** The entry as written, for evidence. */
  raw: Record<string, unknown>;
}

export interface LogLine {
  /** 1-based line number in the log file. */
  line: number;
  time: number | null;
  pid: number | null;
  msg: string;
  fields: Record<string, unknown>;
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

async function readJson(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
}

export async function readAgentCredentials(stateDir: string): Promise<AgentMqttCredentials> {
  const c = (await readJson(path.join(stateDir, 'credentials.json'))) as { spoke?: string; mqtt?: Record<string, string> } | null;
  if (!c?.mqtt || !c.spoke) throw new Error(`${stateDir}/credentials.json holds no MQTT credentials`);
  return { spoke: c.spoke, url: c.mqtt.url!, clientId: c.mqtt.clientId!, username: c.mqtt.username!, password: c.mqtt.password! };
}

/** The envelope the agent stored (`applied-envelope.json`), or null before the first. */
export async function readStoredEnvelope(stateDir: string): Promise<StoredEnvelope | null> {
  const e = (await readJson(path.join(stateDir, 'applied-envelope.json'))) as { generation?: unknown; payload?: { deployments?: unknown[] } } | null;
  if (!e) return null;
  const generation = num(e.generation);
  if (generation === null) throw new Error(`${stateDir}/applied-envelope.json has no numeric generation`);
  const deployments = (e.payload?.deployments ?? []).map((d) => {
    const x = d as { name?: unknown; model?: { name?: unknown; version?: unknown } };
    return { name: String(x.name), model: String(x.model?.name), version: String(x.model?.version) };
  });
  return { generation, deployments };
}

/** Entries of `process-ledger.json` (any list of objects under `processes`); empty when there is none. */
export async function readLedgerProcesses(stateDir: string): Promise<LedgerProcess[]> {
  const l = (await readJson(path.join(stateDir, 'process-ledger.json'))) as { processes?: unknown } | null;
  if (!l || !Array.isArray(l.processes)) return [];
  return l.processes.map((p) => {
    const raw = (p ?? {}) as Record<string, unknown>;
    return {
      pid: num(raw.pid),
      instanceId: str(raw.instanceId),
      deployment: str(raw.deployment),
      modelName: str(raw.modelName),
      modelVersion: str(raw.modelVersion),
      port: num(raw.port),
      role: str(raw.role) ?? str(raw.state),
      drainUntil: num(raw.drainUntil),
      raw,
    };
  });
}

/** The agent's pino JSON lines (non-JSON lines, such as a Node crash trace, are skipped). */
export async function readLogLines(file: string): Promise<LogLine[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return [];
  }
  const out: LogLine[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (!l.startsWith('{')) continue;
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(l) as Record<string, unknown>;
    } catch {
      continue;
    }
    const t = j.time;
    const time = typeof t === 'number' ? t : typeof t === 'string' ? Date.parse(t) : NaN;
    out.push({ line: i + 1, time: Number.isFinite(time) ? time : null, pid: num(j.pid), msg: str(j.msg) ?? '', fields: j });
  }
  return out;
}
