import { readFileSync, readdirSync } from 'node:fs';

/**
 * CPU and memory of other processes, read from Linux's /proc: the hub, its
 * embedded Postgres, the broker. The benchmark needs Linux for these figures
 * (it says so and leaves them out elsewhere).
 */

const TICKS_PER_SECOND = 100; // USER_HZ; 100 on every Linux architecture Node supports

export interface ProcSample {
  pid: number;
  /** utime + stime, seconds. */
  cpuSeconds: number;
  rssBytes: number;
  /** Peak resident set (VmHWM). */
  peakRssBytes: number;
}

export const procAvailable = (() => {
  try {
    readFileSync('/proc/self/stat', 'utf8');
    return true;
  } catch {
    return false;
  }
})();

function statFields(pid: number): string[] | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces: split after the last ')'.
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** Null when the process is gone. */
export function sampleProcess(pid: number): ProcSample | null {
  const f = statFields(pid);
  if (!f) return null;
  // Fields after the name, 0-based: state(0) ppid(1) ... utime(11) stime(12).
  const cpuSeconds = (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND;
  let rssBytes = 0;
  let peakRssBytes = 0;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    rssBytes = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    peakRssBytes = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
  } catch {
    return null;
  }
  return { pid, cpuSeconds, rssBytes, peakRssBytes };
}

/** Every live descendant of `pid` (children, grandchildren...). */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(Number(entry));
    if (!f) continue;
    const ppid = Number(f[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const stack = [...(children.get(pid) ?? [])];
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out;
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/**
 * CPU seconds of a process tree, kept across samples: Postgres backends come
 * and go, so each pid's last reading is remembered and the sum covers every
 * process seen so far (a backend that exited after its last sample loses only
 * its time since then). Pass `only` to count only processes with that name.
 */
export class TreeCpu {
  private readonly last = new Map<number, number>();

  constructor(
    private readonly root: number,
    private readonly only?: string,
  ) {}

  sample(): number {
    for (const pid of descendants(this.root)) {
      if (this.only && comm(pid) !== this.only) continue;
      const s = sampleProcess(pid);
      if (s) this.last.set(pid, s.cpuSeconds);
    }
    let total = 0;
    for (const v of this.last.values()) total += v;
    return total;
  }
}
