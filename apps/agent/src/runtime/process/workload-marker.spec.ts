import { spawn, type ChildProcess } from 'node:child_process';
import { readProcStat } from '../../support/proc.js';
import { sameProcess } from './os-process.js';
import { findMarkedProcesses, markerEnvironment, STATE_DIR_ENV, WORKLOAD_ENV } from './workload-marker.js';

const linux = process.platform === 'linux';
const identity = {
  instanceId: 'instance-1',
  deployment: 'classifier',
  key: 'classifier/sha256:abc/0123',
  digest: 'sha256:abc',
  modelName: 'classifier',
  modelVersion: '1.0.0',
  launch: { runtime: 'builtin' as const, modelName: 'classifier', modelVersion: '1.0.0', modelPath: '/cache/model.onnx', executionProvider: 'cpu' as const },
};

describe('workload marks', () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    // The whole group: the forked grandchild too.
    for (const c of children.splice(0)) process.kill(-(c.pid as number), 'SIGKILL');
  });

  /** A detached process (its own group, as the runtime starts workloads) carrying `env`, which forks one child inheriting it. */
  async function markedGroup(env: Record<string, string>): Promise<ChildProcess> {
    const child = spawn(process.execPath, ['-e', "require('node:child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }); setInterval(() => {}, 1000)"], {
      detached: true,
      stdio: 'ignore',
      env: { ...process.env, ...env },
    });
    children.push(child);
    await new Promise((resolve) => child.once('spawn', resolve));
    return child;
  }

  it('say whose a process is in words people can grep, and carry what the ledger would hold', () => {
    const env = markerEnvironment({ spoke: 'site-17', stateDir: '/var/lib/flotilla-agent', identity, port: 41000, metricsPort: undefined });
    expect(env[WORKLOAD_ENV]).toBe('site-17/classifier/instance-1');
    expect(env[STATE_DIR_ENV]).toBe('/var/lib/flotilla-agent');
    expect(JSON.parse(env.FLOTILLA_WORKLOAD_SPEC as string)).toEqual({ ...identity, instanceId: undefined, port: 41000 });
  });

  (linux ? it : it.skip)("find the leader of each group marked with this state directory, and nothing of another agent's", async () => {
    const mine = await markedGroup(markerEnvironment({ spoke: 's', stateDir: '/tmp/agent-a', identity, port: 41000, metricsPort: undefined }));
    await markedGroup(markerEnvironment({ spoke: 's', stateDir: '/tmp/agent-b', identity: { ...identity, instanceId: 'other' }, port: 41001, metricsPort: undefined }));
    // Give the forked grandchild time to exist: it carries the marks too, and must not count twice.
    await new Promise((resolve) => setTimeout(resolve, 300));

    const found = await findMarkedProcesses('/tmp/agent-a');

    expect(found).toEqual([{ pid: mine.pid, startTime: expect.any(Number), instanceId: 'instance-1', deployment: 'classifier', spec: expect.objectContaining({ port: 41000, key: identity.key }) }]);
  });

  (linux ? it : it.skip)('tell a process from a later one with the same pid by its start time', async () => {
    const child = await markedGroup({});
    const stat = await readProcStat(child.pid as number);
    expect(stat).not.toBeNull();
    expect(await sameProcess(child.pid as number, stat?.startTime)).toBe(true);
    expect(await sameProcess(child.pid as number, (stat?.startTime as number) + 1)).toBe(false);
    expect(await sameProcess(child.pid as number, undefined)).toBe(true);
  });
});
