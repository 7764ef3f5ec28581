import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * The limits a large simulated fleet on one machine runs into, raised by the
 * benchmark for its own processes where the kernel lets it, and reported
 * where it does not: open files (one socket per MQTT client, in the broker
 * and in the simulators) and loopback source ports (one per client
 * connection to one broker address: the ephemeral range is about 28,000).
 */

export interface NofileLimit {
  process: string;
  pid: number;
  /** What the process needs for this fleet. */
  wanted: number;
  soft: number | null;
  hard: number | null;
  /** Soft limit at least `wanted` after trying. */
  enough: boolean;
  note: string;
}

export interface Limits {
  nofile: NofileLimit[];
  ephemeralPorts: { low: number; high: number; count: number } | null;
  /** Source addresses the simulators spread their connections over (127.0.0.1..k). */
  sourceAddresses: number;
  somaxconn: number | null;
}

function readLimits(pid: number): { soft: number | null; hard: number | null } {
  try {
    const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const [soft, hard] = (line ?? '').replace('Max open files', '').trim().split(/\s+/);
    const num = (x: string | undefined) => (x === undefined ? null : x === 'unlimited' ? Infinity : Number(x));
    return { soft: num(soft), hard: num(hard) };
  } catch {
    return { soft: null, hard: null };
  }
}

/**
 * Raises `pid`'s open-file limit to `wanted` with prlimit(1): the soft limit
 * up to the hard one is always allowed for one's own processes; the hard
 * limit only with CAP_SYS_RESOURCE. Reports what it got.
 */
export function raiseNofile(processName: string, pid: number, wanted: number): NofileLimit {
  const before = readLimits(pid);
  let note = '';
  if (before.soft !== null && before.soft >= wanted) return { process: processName, pid, wanted, ...before, enough: true, note: 'already enough' };
  for (const target of [`${wanted}:${wanted}`, before.hard !== null && Number.isFinite(before.hard) ? `${before.hard}:${before.hard}` : null]) {
    if (!target) continue;
    try {
      execFileSync('prlimit', ['--pid', String(pid), `--nofile=${target}`], { stdio: ['ignore', 'ignore', 'pipe'] });
      break;
    } catch (err) {
      note = `prlimit --nofile=${target}: ${String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim()}`;
    }
  }
  const after = readLimits(pid);
  const enough = after.soft !== null && after.soft >= wanted;
  if (!enough && !note) note = 'not raised';
  if (!enough) note += ` (hard limit ${after.hard}; raising it needs CAP_SYS_RESOURCE, e.g. \`ulimit -Hn ${wanted}\` as root outside a restricted container, or LimitNOFILE= in a unit)`;
  return { process: processName, pid, wanted, ...after, enough, note: note.trim() };
}

export function ephemeralPorts(): Limits['ephemeralPorts'] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return low && high ? { low, high, count: high - low + 1 } : null;
  } catch {
    return null;
  }
}

/** Loopback source addresses needed so no (source, destination) pair needs more ports than ~70% of the range. */
export function sourceAddressesFor(connections: number): number {
  const range = ephemeralPorts()?.count ?? 28_000;
  return Math.min(250, Math.max(1, Math.ceil(connections / (range * 0.7))));
}

export function somaxconn(): number | null {
  try {
    return Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
  } catch {
    return null;
  }
}
