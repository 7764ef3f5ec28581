import { TrainingSlots } from './training-slots.js';

describe('training slots', () => {
  const signal = new AbortController().signal;

  it('never gives one GPU to two trainings; a CPU training does not take a GPU', async () => {
    const slots = new TrainingSlots(2);
    const a = await slots.acquire({ job: 'a', gpus: 2 }, signal, () => undefined);
    expect(a.gpus).toEqual([0, 1]);
    const waits: string[] = [];
    let bHeld: number[] | null = null;
    const b = slots.acquire({ job: 'b', gpus: 1 }, signal, (why) => waits.push(why)).then((s) => {
      bHeld = s.gpus;
      return s;
    });
    const cpu = await slots.acquire({ job: 'c', gpus: 0 }, signal, () => undefined);
    expect(cpu.gpus).toEqual([]);
    await Promise.resolve();
    expect(bHeld).toBeNull();
    expect(waits).toEqual(['waiting for GPU: 1 asked, 0 of 2 free']);
    a.release();
    expect((await b).gpus).toEqual([0]);
    const d = await slots.acquire({ job: 'd', gpus: 1 }, signal, () => undefined);
    expect(d.gpus).toEqual([1]);
    expect(slots.blockedBy({ job: 'e', gpus: 3 })).toBe('waiting for GPU: asks 3 GPUs, this appliance has 2');
    expect(slots.blockedBy({ job: 'f', gpus: 0 })).toBe('waiting for the CPU: another CPU training is running');
  });

  it('runs GPU jobs one at a time when the GPUs are not counted, and drops a cancelled waiter', async () => {
    const slots = new TrainingSlots();
    const a = await slots.acquire({ job: 'a', gpus: 1 }, signal, () => undefined);
    const abort = new AbortController();
    const b = slots.acquire({ job: 'b', gpus: 1 }, abort.signal, () => undefined);
    abort.abort(new Error('removed'));
    await expect(b).rejects.toThrow('removed');
    const waits: string[] = [];
    const c = slots.acquire({ job: 'c', gpus: 1 }, signal, (w) => waits.push(w));
    expect(waits).toEqual(['waiting for GPU: another training holds the GPUs']);
    a.release();
    expect((await c).gpus).toEqual([]);
  });
});
