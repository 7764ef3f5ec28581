import { SingleFlight } from './single-flight.js';

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const live = (): AbortSignal => new AbortController().signal;

describe('SingleFlight', () => {
  it('runs one operation for concurrent callers of the same key', async () => {
    const flights = new SingleFlight<number>();
    const gate = deferred<number>();
    let runs = 0;
    const op = async (): Promise<number> => {
      runs += 1;
      return gate.promise;
    };
    const a = flights.run('k', live(), op);
    const b = flights.run('k', live(), op);
    gate.resolve(7);
    expect(await Promise.all([a, b])).toEqual([7, 7]);
    expect(runs).toBe(1);
  });

  it('runs separate operations for different keys', async () => {
    const flights = new SingleFlight<string>();
    const results = await Promise.all([flights.run('a', live(), async () => 'A'), flights.run('b', live(), async () => 'B')]);
    expect(results).toEqual(['A', 'B']);
  });

  it('shares a rejection with every caller', async () => {
    const flights = new SingleFlight<number>();
    const op = async (): Promise<number> => {
      throw new Error('boom');
    };
    await expect(Promise.all([flights.run('k', live(), op), flights.run('k', live(), op)])).rejects.toThrow('boom');
    expect(flights.has('k')).toBe(false);
  });

  it('aborts the operation only when its last caller gives up', async () => {
    const flights = new SingleFlight<number>();
    let opSignal: AbortSignal | null = null;
    const gate = deferred<number>();
    const op = async (s: AbortSignal): Promise<number> => {
      opSignal = s;
      return gate.promise;
    };
    const first = new AbortController();
    const second = new AbortController();
    const a = flights.run('k', first.signal, op);
    const b = flights.run('k', second.signal, op);

    first.abort(new Error('first left'));
    await expect(a).rejects.toThrow('first left');
    expect(opSignal!.aborted).toBe(false);

    second.abort(new Error('second left'));
    await expect(b).rejects.toThrow('second left');
    expect(opSignal!.aborted).toBe(true);
    gate.resolve(1);
  });

  it('starts a fresh operation after a cancelled one has wound down', async () => {
    const flights = new SingleFlight<string>();
    const gate = deferred<string>();
    const ac = new AbortController();
    const cancelled = flights.run('k', ac.signal, () => gate.promise);
    ac.abort(new Error('gone'));
    await expect(cancelled).rejects.toThrow('gone');

    const fresh = flights.run('k', live(), async () => 'fresh');
    gate.resolve('stale');
    expect(await fresh).toBe('fresh');
  });
});
