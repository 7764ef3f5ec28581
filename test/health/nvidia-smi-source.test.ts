import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NvidiaSmiSource } from '../../apps/agent/src/health/index.js';
import { writeFakeNvidiaSmi } from './fake-nvidia-smi.js';

describe('NvidiaSmiSource running a real process', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-nvidia-smi-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));
  const live = (): AbortSignal => new AbortController().signal;

  it('reads eight H100s with the query and then -L', async () => {
    const { binary, callLog } = await writeFakeNvidiaSmi(dir, { query: 'h100-8x.query.csv', list: 'h100-8x.list.txt' });

    const { gpus, errors } = await new NvidiaSmiSource({ binary }).read(live());

    expect(errors).toEqual([]);
    expect(gpus).toHaveLength(8);
    expect((await readFile(callLog, 'utf8')).trim().split('\n')).toEqual([
      '--query-gpu=index,name,uuid,memory.total,memory.used,utilization.gpu,temperature.gpu,power.draw --format=csv,noheader,nounits',
      '-L',
    ]);
  });

  it('attaches MIG instances listed by -L to the queried A100', async () => {
    const { binary } = await writeFakeNvidiaSmi(dir, { query: 'a100-mig.query.csv', list: 'a100-mig.list.txt' });

    const { gpus, errors } = await new NvidiaSmiSource({ binary }).read(live());

    expect(errors).toEqual([]);
    expect(gpus[0]?.utilisation).toBeNull();
    expect(gpus[0]?.migDevices.map((m) => m.profile)).toEqual(['3g.40gb', '2g.20gb', '1g.10gb', '1g.10gb']);
    expect(gpus[1]?.migDevices).toEqual([]);
  });

  it('finds no GPU on a host where nvidia-smi exits 6 with "No devices were found", without an error', async () => {
    const { binary, callLog } = await writeFakeNvidiaSmi(dir, { query: 'no-gpu.txt', exitCode: 6 });

    expect(await new NvidiaSmiSource({ binary }).read(live())).toEqual({ gpus: [], errors: [] });
    expect((await readFile(callLog, 'utf8')).trim().split('\n')).toHaveLength(1);
  });

  it('reports a driver that is not loaded (exit 9) as an error, without throwing', async () => {
    const { binary } = await writeFakeNvidiaSmi(dir, { query: 'driver-not-loaded.txt', exitCode: 9 });

    const { gpus, errors } = await new NvidiaSmiSource({ binary }).read(live());

    expect(gpus).toEqual([]);
    expect(errors).toEqual([expect.stringContaining("driver not loaded: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver")]);
  });

  it('reports a missing binary as an error, without throwing', async () => {
    const { gpus, errors } = await new NvidiaSmiSource({ binary: join(dir, 'no-such-nvidia-smi') }).read(live());

    expect(gpus).toEqual([]);
    expect(errors).toEqual([`nvidia-smi query: ${join(dir, 'no-such-nvidia-smi')} not found`]);
  });

  it('reports a binary that is not executable', async () => {
    const binary = join(dir, 'nvidia-smi');
    await writeFile(binary, 'not a program');
    await chmod(binary, 0o644);

    const { errors } = await new NvidiaSmiSource({ binary }).read(live());

    expect(errors).toEqual([`nvidia-smi query: ${binary} is not executable`]);
  });

  it('kills and reports an nvidia-smi that hangs past the timeout', async () => {
    const { binary } = await writeFakeNvidiaSmi(dir, { query: 'h100-8x.query.csv', sleepSeconds: 5 });

    const { gpus, errors } = await new NvidiaSmiSource({ binary, timeoutMs: 200 }).read(live());

    expect(gpus).toEqual([]);
    expect(errors).toEqual(['nvidia-smi query: timed out after 200 ms']);
  });

  it('stops waiting for nvidia-smi when aborted', async () => {
    const { binary } = await writeFakeNvidiaSmi(dir, { query: 'h100-8x.query.csv', sleepSeconds: 5 });
    const ac = new AbortController();

    const reading = new NvidiaSmiSource({ binary, timeoutMs: 60_000 }).read(ac.signal);
    ac.abort();

    expect((await reading).errors).toEqual(['nvidia-smi query: aborted']);
  });

  it('reports an unexpected exit code with what the tool printed', async () => {
    const { binary } = await writeFakeNvidiaSmi(dir, { query: 'h100-8x.query.csv', exitCode: 15 });

    const { errors } = await new NvidiaSmiSource({ binary }).read(live());

    expect(errors).toEqual([expect.stringMatching(/^nvidia-smi query exited with 15: 0, NVIDIA H100/)]);
  });
});
