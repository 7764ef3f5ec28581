/**
 * Profiles one phase of another Node process through its inspector (Chrome
 * DevTools Protocol over WebSocket): the hub is started with
 * `--inspect=127.0.0.1:PORT` and only the window between start() and stop()
 * is sampled, so the profile shows the fan-out and not the enrolment.
 */

interface CdpReply {
  id: number;
  result?: { profile?: unknown; result?: { value?: unknown } };
  error?: { message: string };
}

export class CdpProfiler {
  private seq = 0;
  private readonly pending = new Map<number, (r: CdpReply) => void>();

  private constructor(private readonly ws: WebSocket) {
    ws.addEventListener('message', (ev) => {
      const msg = JSON.parse(String(ev.data)) as CdpReply;
      const cb = this.pending.get(msg.id);
      if (cb) {
        this.pending.delete(msg.id);
        cb(msg);
      }
    });
  }

  static async connect(inspectPort: number, samplingIntervalUs = 200): Promise<CdpProfiler> {
    const targets = (await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json()) as Array<{ webSocketDebuggerUrl: string }>;
    const url = targets[0]?.webSocketDebuggerUrl;
    if (!url) throw new Error(`no inspector target on port ${inspectPort}`);
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true });
      ws.addEventListener('error', () => reject(new Error(`could not open the inspector at ${url}`)), { once: true });
    });
    const p = new CdpProfiler(ws);
    await p.send('Profiler.enable');
    await p.send('Profiler.setSamplingInterval', { interval: samplingIntervalUs });
    return p;
  }

  send(method: string, params: Record<string, unknown> = {}): Promise<CdpReply> {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(id, (r) => (r.error ? reject(new Error(`${method}: ${r.error.message}`)) : resolve(r)));
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  async start(): Promise<void> {
    await this.send('Profiler.start');
  }

  /** The .cpuprofile JSON of the window since start(). */
  async stop(): Promise<unknown> {
    const r = await this.send('Profiler.stop');
    return r.result?.profile;
  }

  /** Samples allocations from now on; stopHeapSampling() tells which of them are still live. */
  async startHeapSampling(): Promise<void> {
    await this.send('HeapProfiler.enable');
    await this.send('HeapProfiler.startSampling', { samplingInterval: 16384 });
  }

  /** The live sampled allocations since startHeapSampling() (after a full GC), as a .heapprofile. */
  async stopHeapSampling(): Promise<unknown> {
    await this.send('HeapProfiler.collectGarbage');
    const r = await this.send('HeapProfiler.stopSampling');
    return r.result?.profile;
  }

  /** process.memoryUsage() of the profiled process, after a full GC. */
  async memoryUsage(): Promise<NodeJS.MemoryUsage> {
    await this.send('HeapProfiler.enable');
    await this.send('HeapProfiler.collectGarbage');
    const r = await this.send('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true });
    return JSON.parse(String(r.result?.result?.value)) as NodeJS.MemoryUsage;
  }

  close(): void {
    this.ws.close();
  }
}

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

/** Live bytes per allocating function (top `limit`) from a sampling heap profile, and the total. */
export function topHeap(profile: unknown, limit = 25): { totalBytes: number; top: Array<{ fn: string; bytes: number; share: number }> } {
  const self = new Map<string, number>();
  let total = 0;
  const walk = (n: HeapNode) => {
    const f = n.callFrame;
    const where = f.url ? `${f.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
    if (n.selfSize) {
      self.set(key, (self.get(key) ?? 0) + n.selfSize);
      total += n.selfSize;
    }
    for (const c of n.children ?? []) walk(c);
  };
  walk((profile as { head: HeapNode }).head);
  return {
    totalBytes: total,
    top: [...self.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([fn, bytes]) => ({ fn, bytes, share: bytes / Math.max(total, 1) })),
  };
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** Self time per function (top `limit`), from a .cpuprofile: what the text summary in the results shows. */
export function topSelfTime(profile: unknown, limit = 25): Array<{ fn: string; selfMs: number; share: number }> {
  const p = profile as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const node = byId.get(p.samples[i]!);
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    if (!node) continue;
    const f = node.callFrame;
    const where = f.url ? `${f.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  }
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([fn, selfMs]) => ({ fn, selfMs, share: selfMs / Math.max(total, 1e-9) }));
}
