interface Flight<T> {
  promise: Promise<T>;
  controller: AbortController;
  waiters: number;
  settled: boolean;
  cancelled: boolean;
}

/**
 * Runs at most one operation per key; concurrent callers for the same key
 * share its result. The operation gets its own signal, aborted only when
 * every caller waiting for it has given up, so one impatient caller cannot
 * cancel a download that others still want.
 */
export class SingleFlight<T> {
  private readonly flights = new Map<string, Flight<T>>();

  has(key: string): boolean {
    return this.flights.has(key);
  }

  async run(key: string, signal: AbortSignal, operation: (signal: AbortSignal) => Promise<T>): Promise<T> {
    signal.throwIfAborted();
    let flight = this.flights.get(key);
    while (flight?.cancelled) {
      // Let a cancelled operation wind down (close its files) before a new
      // one touches the same partial download.
      await waitFor(flight.promise, signal).catch((err: unknown) => {
        if (signal.aborted) throw err;
      });
      flight = this.flights.get(key);
    }
    if (!flight) {
      const controller = new AbortController();
      const created: Flight<T> = {
        controller,
        waiters: 0,
        settled: false,
        cancelled: false,
        promise: Promise.resolve(undefined as T),
      };
      created.promise = operation(controller.signal).finally(() => {
        created.settled = true;
        if (this.flights.get(key) === created) this.flights.delete(key);
      });
      // Rejections reach every waiter through waitFor; this only stops the
      // shared promise from counting as unhandled when all waiters left.
      created.promise.catch(() => undefined);
      this.flights.set(key, created);
      flight = created;
    }
    flight.waiters += 1;
    try {
      return await waitFor(flight.promise, signal);
    } finally {
      flight.waiters -= 1;
      if (flight.waiters === 0 && !flight.settled) {
        // A later caller starts afresh rather than joining a cancelled flight.
        flight.cancelled = true;
        flight.controller.abort(signal.reason);
      }
    }
  }
}

function waitFor<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
