import mqtt from 'mqtt';
import { type AgentMqttCredentials, readLogLines } from '../agent-files.js';
import { type CheckContext, type InvariantResult, type Violation, result, sleep } from './invariant.js';

/**
 * (4) No revoked spoke can connect. One spoke is revoked during the trial
 * (DELETE /api/v1/spokes/{name}); its old credentials, from its state
 * directory, are tried with mqtt.js right after the hub confirmed, and again
 * after the trial, and must be refused with a CONNACK. Its own agent, still
 * running and retrying, must not log a connection after the revocation
 * either. Before the revocation the same credentials are tried once and
 * must be accepted, so a refusal means revocation, not a harness mistake.
 */

export type ConnectOutcome = 'accepted' | 'refused' | 'unreachable';

export interface ConnectTry {
  at: number;
  when: string;
  outcome: ConnectOutcome;
  detail: string;
}

/**
 * One connection attempt with the spoke's credentials: CONNACK accepted, CONNACK refused, or no CONNACK at all.
 * `connectAsync(…, false)`: with retries allowed (the default) and reconnectPeriod 0, a connection the broker
 * closes before its CONNACK (the hub killed mid-authentication) settles neither way, and the trial hung on it.
 */
export async function tryConnect(creds: AgentMqttCredentials): Promise<Omit<ConnectTry, 'when'>> {
  const at = Date.now();
  const client = mqtt.connectAsync(
    creds.url,
    { clientId: creds.clientId, username: creds.username, password: creds.password, protocolVersion: 4, clean: true, reconnectPeriod: 0, connectTimeout: 5_000 },
    false,
  );
  let timer: NodeJS.Timeout | undefined;
  // Belt and braces: whatever mqtt.js does, one attempt ends within 8 s.
  const bounded = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('no CONNACK and no close within 8 s')), 8_000);
  });
  try {
    const c = await Promise.race([client, bounded]);
    await c.endAsync(true).catch(() => undefined);
    return { at, outcome: 'accepted', detail: 'CONNACK 0' };
  } catch (err) {
    void client.then((c) => c.end(true), () => undefined);
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'number') return { at, outcome: 'refused', detail: `CONNACK ${code}` };
    return { at, outcome: 'unreachable', detail: String(code ?? (err as Error).message) };
  } finally {
    clearTimeout(timer);
  }
}

/** Tries until the broker gives a definite answer (it may be restarting), up to `timeoutMs`. */
export async function definiteConnect(creds: AgentMqttCredentials, when: string, timeoutMs: number): Promise<ConnectTry> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const t = await tryConnect(creds);
    if (t.outcome !== 'unreachable' || Date.now() > deadline) return { ...t, when };
    await sleep(500);
  }
}

export interface RevocationRecord {
  spoke: string;
  creds: AgentMqttCredentials;
  control: ConnectTry | null;
  afterRevoke: ConnectTry | null;
}

export async function checkRevocation(ctx: CheckContext, rec: RevocationRecord | null): Promise<InvariantResult> {
  const { driver } = ctx;
  if (!rec) return result([{ message: 'no spoke was chosen for revocation in this trial' }], undefined, true);
  if (!driver.intent.revoked.includes(rec.spoke) || driver.revokedAt === null) {
    const step = driver.steps.find((s) => s.kind === 'revoke');
    return result([{ message: `the revocation of ${rec.spoke} never got a definite answer from the hub, so it cannot be tested`, evidence: step }], undefined, true);
  }
  const tries: ConnectTry[] = [];
  if (rec.control) tries.push(rec.control);
  if (rec.afterRevoke) tries.push(rec.afterRevoke);
  const final = await definiteConnect(rec.creds, 'after the trial', 20_000);
  tries.push(final);
  const violations: Violation[] = [];
  let unverifiable = false;
  if (rec.control?.outcome !== 'accepted') {
    unverifiable = true;
    violations.push({ message: `control: ${rec.spoke}'s credentials were not accepted before its revocation (${rec.control?.outcome ?? 'not tried'}: ${rec.control?.detail ?? ''}), so a refusal proves nothing`, evidence: tries });
  }
  for (const t of tries.filter((t) => t.when !== 'control' && t.outcome === 'accepted')) {
    unverifiable = false;
    violations.push({ message: `${rec.spoke}'s old credentials were accepted by the broker ${t.when}, ${Math.round((t.at - driver.revokedAt) / 1000)} s after the hub confirmed its revocation`, evidence: tries });
  }
  // The agent itself keeps retrying: a connection it made after the revocation (with a second of slack for a CONNACK already in flight).
  const agent = ctx.system.agents.get(rec.spoke)!;
  const connects = (await readLogLines(agent.logFile)).filter((l) => l.msg === 'connected to the broker' && l.time !== null && l.time > driver.revokedAt! + 1_000);
  if (connects.length > 0) {
    unverifiable = false;
    violations.push({
      message: `the revoked agent ${rec.spoke} logged "connected to the broker" ${connects.length} time(s) after its revocation`,
      evidence: connects.slice(0, 5).map((l) => ({ line: l.line, time: l.time === null ? null : new Date(l.time).toISOString() })),
    });
  }
  const definite = tries.filter((t) => t.when !== 'control' && t.outcome !== 'unreachable');
  if (violations.length === 0 && definite.length === 0) {
    return result([{ message: `the broker never answered a connection attempt with ${rec.spoke}'s credentials after its revocation`, evidence: tries }], undefined, true);
  }
  return result(violations, { tries, revokedAt: new Date(driver.revokedAt).toISOString() }, unverifiable);
}
