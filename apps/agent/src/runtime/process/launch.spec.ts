import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { defaultBuiltinEntry, findExecutable, launchCommand } from './launch.js';

const ctx = { host: '127.0.0.1', port: 8100, nodePath: '/usr/bin/node', builtinEntry: '/app/dist/main.js', graceSeconds: 29 };

describe('launch commands', () => {
  it('runs the compiled builtin server with node, the verified model file and the port', () => {
    const info = { runtime: 'builtin' as const, modelName: 'classifier', modelVersion: '1.0.0', modelPath: '/cache/m.onnx', executionProvider: 'cpu' as const };
    expect(launchCommand(info, ctx)).toEqual({
      command: '/usr/bin/node',
      args: ['/app/dist/main.js', '--model', 'classifier=/cache/m.onnx', '--version', '1.0.0', '--host', '127.0.0.1', '--port', '8100', '--execution-provider', 'cpu', '--grace-period', '29'],
    });
  });

  it('runs tritonserver on the model repository without gRPC, with metrics on their own port', () => {
    const info = { runtime: 'triton' as const, binary: '/opt/tritonserver/bin/tritonserver', repositoryPath: '/cache/repo' };
    expect(launchCommand(info, { ...ctx, metricsPort: 8101 })).toEqual({
      command: '/opt/tritonserver/bin/tritonserver',
      args: ['--model-repository=/cache/repo', '--http-address=127.0.0.1', '--http-port=8100', '--allow-grpc=false', '--allow-metrics=true', '--metrics-port=8101'],
    });
  });

  it('finds the builtin server under dist/ at the package root', () => {
    expect(defaultBuiltinEntry()).toMatch(/\/dist\/libs\/inference-server\/src\/main\.js$/);
  });

  it('finds an executable on the search path and nothing where there is none', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-bin-'));
    try {
      await writeFile(path.join(dir, 'tritonserver'), '#!/bin/sh\n');
      await writeFile(path.join(dir, 'not-executable'), '');
      await chmod(path.join(dir, 'tritonserver'), 0o755);
      expect(await findExecutable('tritonserver', `/nonexistent${path.delimiter}${dir}`)).toBe(path.join(dir, 'tritonserver'));
      expect(await findExecutable('not-executable', dir)).toBeNull();
      expect(await findExecutable('tritonserver', '/nonexistent')).toBeNull();
      expect(await findExecutable('tritonserver', undefined)).toBeNull();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
