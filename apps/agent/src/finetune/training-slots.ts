/**
 * Who may train now on this appliance: never two trainings on one GPU, and
 * one CPU-only training at a time (a second would only slow both down). A
 * job asking `resources.gpu: n` waits until n GPUs are free; with the GPU
 * count unknown, a GPU job holds all of them. Waiters are served in arrival
 * order for the same kind of slot.
 */
export interface SlotRequest {
  job: string;
  gpus: number;
}

export interface HeldSlot {
  /** GPU indices held (empty for a CPU job, or when the appliance's GPUs are not counted). */
  gpus: number[];
  release(): void;
}

interface Waiter {
  request: SlotRequest;
  grant: (slot: HeldSlot) => void;
}

export class TrainingSlots {
  private readonly freeGpus: Set<number>;
  /** GPU jobs when the count is unknown: at most one at a time. */
  private exclusiveGpuHeld = false;
  private cpuHeld = false;
  private readonly waiters: Waiter[] = [];

  /** `gpuCount` undefined: the GPUs are not counted, so GPU jobs run one at a time. */
  constructor(private readonly gpuCount?: number) {
    this.freeGpus = new Set(Array.from({ length: gpuCount ?? 0 }, (_, i) => i));
  }

  /** Why a request cannot be granted now, or null when it can. */
  blockedBy(request: SlotRequest): string | null {
    if (request.gpus === 0) return this.cpuHeld ? 'waiting for the CPU: another CPU training is running' : null;
    if (this.gpuCount === undefined) return this.exclusiveGpuHeld ? 'waiting for GPU: another training holds the GPUs' : null;
    if (request.gpus > this.gpuCount) return `waiting for GPU: asks ${request.gpus} GPUs, this appliance has ${this.gpuCount}`;
    return this.freeGpus.size < request.gpus ? `waiting for GPU: ${request.gpus} asked, ${this.freeGpus.size} of ${this.gpuCount} free` : null;
  }

  /** Resolves once the slot is held; `onWait` says why it waits (also each time the reason changes). */
  acquire(request: SlotRequest, signal: AbortSignal, onWait: (why: string) => void): Promise<HeldSlot> {
    signal.throwIfAborted();
    const earlier = this.waiters.some((w) => (w.request.gpus > 0) === (request.gpus > 0));
    const why = this.blockedBy(request);
    if (why === null && !earlier) return Promise.resolve(this.take(request));
    onWait(why ?? (request.gpus > 0 ? 'waiting for GPU: earlier jobs are queued' : 'waiting for the CPU: earlier jobs are queued'));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { request, grant: resolve };
      this.waiters.push(waiter);
      signal.addEventListener(
        'abort',
        () => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) {
            this.waiters.splice(i, 1);
            reject(signal.reason);
          }
        },
        { once: true },
      );
    });
  }

  private take(request: SlotRequest): HeldSlot {
    let gpus: number[] = [];
    if (request.gpus === 0) this.cpuHeld = true;
    else if (this.gpuCount === undefined) this.exclusiveGpuHeld = true;
    else {
      gpus = [...this.freeGpus].sort((a, b) => a - b).slice(0, request.gpus);
      for (const g of gpus) this.freeGpus.delete(g);
    }
    let released = false;
    return {
      gpus,
      release: () => {
        if (released) return;
        released = true;
        if (request.gpus === 0) this.cpuHeld = false;
        else if (this.gpuCount === undefined) this.exclusiveGpuHeld = false;
        else for (const g of gpus) this.freeGpus.add(g);
        this.serve();
      },
    };
  }

  private serve(): void {
    for (let i = 0; i < this.waiters.length; ) {
      const w = this.waiters[i]!;
      if (this.blockedBy(w.request) === null) {
        this.waiters.splice(i, 1);
        w.grant(this.take(w.request));
      } else i += 1;
    }
  }
}
