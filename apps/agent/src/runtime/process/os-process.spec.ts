import { spawn } from 'node:child_process';
import { INSTANCE_ENV, isAlive, ownsProcess, waitForPidExit } from './os-process.js';

const linux = process.platform === 'linux';

describe('process ownership', () => {
  (linux ? it : it.skip)('recognises a process by the instance marker in its environment, and no other', async () => {
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore', env: { ...process.env, [INSTANCE_ENV]: 'abc' } });
    await new Promise((resolve) => child.once('spawn', resolve));
    try {
      expect(await ownsProcess(child.pid as number, 'abc')).toBe(true);
      expect(await ownsProcess(child.pid as number, 'abd')).toBe(false);
      expect(await ownsProcess(process.pid, 'abc')).toBe(false);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('tells a live pid from one that has exited', async () => {
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    await new Promise((resolve) => child.once('spawn', resolve));
    expect(await isAlive(child.pid as number)).toBe(true);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
    expect(await waitForPidExit(child.pid as number, 5000)).toBe(true);
    expect(await isAlive(child.pid as number)).toBe(false);
  });
});
