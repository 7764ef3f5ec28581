import { createServer } from 'node:net';

/** Hands out TCP ports for workloads; `avoid` holds ports the runtime has promised elsewhere. */
export interface PortAllocator {
  allocate(opts: { preferred?: number; avoid: ReadonlySet<number> }): Promise<number>;
}

/** Whether `port` can be bound on `host` right now (a probe bind, closed at once). */
export function isPortFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

function ephemeralPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('the OS gave no port'))));
    });
  });
}

/**
 * Free ports on the host the workloads bind: the preferred one (a
 * deployment keeps its port across restarts, so its endpoint stays put) if it
 * is free, else the first free one in `range`, else one the OS picks. A port
 * can still be taken between this check and the workload's bind; the
 * workload then exits and is restarted on another port.
 */
export class LocalPortAllocator implements PortAllocator {
  constructor(
    private readonly host: string,
    private readonly range?: { min: number; max: number },
  ) {
    if (range && (range.min < 1 || range.max > 65535 || range.min > range.max)) {
      throw new Error(`port range ${range.min}-${range.max} must lie within 1-65535, min <= max`);
    }
  }

  async allocate({ preferred, avoid }: { preferred?: number; avoid: ReadonlySet<number> }): Promise<number> {
    const inRange = (p: number) => !this.range || (p >= this.range.min && p <= this.range.max);
    if (preferred !== undefined && inRange(preferred) && !avoid.has(preferred) && (await isPortFree(this.host, preferred))) {
      return preferred;
    }
    if (this.range) {
      for (let p = this.range.min; p <= this.range.max; p += 1) {
        if (!avoid.has(p) && (await isPortFree(this.host, p))) return p;
      }
      throw new Error(`no free port in ${this.range.min}-${this.range.max} on ${this.host}`);
    }
    for (let attempt = 0; attempt < 20; attempt += 1) {
      const p = await ephemeralPort(this.host);
      if (!avoid.has(p)) return p;
    }
    throw new Error(`no free port on ${this.host}`);
  }
}
