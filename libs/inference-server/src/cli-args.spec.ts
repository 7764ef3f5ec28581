import { ConfigError, parseServerConfig } from './cli-args.js';

function problemsOf(argv: string[], env: Record<string, string> = {}): string[] {
  try {
    parseServerConfig(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('inference server command line', () => {
  it('reads models, version, host, port and execution provider from options', () => {
    expect(
      parseServerConfig(
        ['--model', 'a=/m/a.onnx', '--model', 'b=/m/b.onnx', '--version', '2.0.0', '--host', '0.0.0.0', '--port', '0', '--execution-provider', 'cpu'],
        {},
      ),
    ).toEqual({
      models: [
        { name: 'a', version: '2.0.0', path: '/m/a.onnx' },
        { name: 'b', version: '2.0.0', path: '/m/b.onnx' },
      ],
      modelRepository: undefined,
      host: '0.0.0.0',
      port: 0,
      executionProvider: 'cpu',
      maxRequestBytes: 32 * 1024 * 1024,
      gracePeriodMs: 30_000,
    });
  });

  it('takes the environment where no option is given, options winning', () => {
    const config = parseServerConfig(['--port', '9000'], {
      FLOTILLA_MODEL_REPOSITORY: '/repo',
      FLOTILLA_INFERENCE_PORT: '8100',
      FLOTILLA_INFERENCE_HOST: '::1',
      FLOTILLA_GRACE_PERIOD: '5',
    });
    expect(config).toMatchObject({ modelRepository: '/repo', models: [], port: 9000, host: '::1', gracePeriodMs: 5000 });
  });

  it('lets --model on the command line replace a repository from the environment', () => {
    expect(parseServerConfig(['--model', 'a=/a.onnx'], { FLOTILLA_MODEL_REPOSITORY: '/repo' })).toMatchObject({
      modelRepository: undefined,
      models: [{ name: 'a', version: '1', path: '/a.onnx' }],
    });
  });

  it('answers help', () => {
    expect(parseServerConfig(['--help'], {})).toBe('help');
  });

  it('reports every bad value at once', () => {
    expect(problemsOf(['--model', 'noequals', '--port', '70000', '--execution-provider', 'tpu', '--grace-period=-1'])).toEqual([
      '--model must be NAME=PATH, got "noequals"',
      '--port must be an integer from 0 to 65535, got "70000"',
      '--execution-provider must be auto, cpu or cuda, got "tpu"',
      '--grace-period must be an integer from 0 to 3600, got "-1"',
    ]);
  });

  it('refuses to start with nothing to serve, or with both a model and a repository', () => {
    expect(problemsOf([])).toEqual(['nothing to serve: give --model NAME=PATH or --model-repository DIR']);
    expect(problemsOf(['--model', 'a=/a.onnx', '--model-repository', '/repo'])).toEqual([
      'give either --model or --model-repository, not both',
    ]);
  });

  it('names an unknown option', () => {
    expect(problemsOf(['--modle', 'a=/a.onnx'])[0]).toContain("Unknown option '--modle'");
  });
});
