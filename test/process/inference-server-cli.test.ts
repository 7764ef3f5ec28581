import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CLASSIFIER_V1, CLASSIFIER_V2, ensureInferenceServerBuilt, EXPECTED_LOGITS, infer, logitsOf, ONE_INPUT, waitUntil } from './support.js';

interface Running {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startCli(entry: string, args: string[]): Running {
  const child = spawn(process.execPath, [entry, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const run: Running = { child, stdout: [], stderr: [], exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))) };
  let buffer = '';
  child.stdout?.on('data', (c: Buffer) => {
    buffer += c.toString();
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    run.stdout.push(...lines);
  });
  child.stderr?.on('data', (c: Buffer) => run.stderr.push(c.toString()));
  return run;
}

async function readyUrl(run: Running): Promise<string> {
  const line = await waitUntil('the ready line', () => {
    if (run.child.exitCode !== null) throw new Error(`the server exited: ${run.stderr.join('')}`);
    return run.stdout.find((l) => l.includes('"msg":"inference server ready"'));
  });
  return (JSON.parse(line) as { url: string }).url;
}

describe('inference server command line', () => {
  let entry: string;
  let dir: string;
  const running: Running[] = [];

  beforeAll(async () => {
    entry = await ensureInferenceServerBuilt();
  }, 300_000);
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-is-cli-'));
  });
  afterEach(async () => {
    for (const r of running.splice(0)) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('prints a ready line with its URL and models, and serves them', async () => {
    const run = startCli(entry, ['--model', `classifier=${CLASSIFIER_V1}`, '--version', '1.0.0', '--port', '0']);
    running.push(run);
    const url = await readyUrl(run);
    const ready = JSON.parse(run.stdout.find((l) => l.includes('inference server ready')) as string);
    expect(ready.models).toEqual([{ name: 'classifier', version: '1.0.0', path: CLASSIFIER_V1, executionProvider: expect.stringMatching(/^(cpu|cuda)$/) }]);

    const { status, json } = await infer(`${url}/v2/models/classifier`);
    expect(status).toBe(200);
    logitsOf(json).forEach((v, i) => expect(v).toBeCloseTo(EXPECTED_LOGITS['1.0.0']![i]!, 5));
  });

  it('finishes an in-flight request on SIGTERM, then exits 0', async () => {
    const run = startCli(entry, ['--model', `classifier=${CLASSIFIER_V1}`, '--port', '0', '--grace-period', '30']);
    running.push(run);
    const url = await readyUrl(run);
    const body = JSON.stringify(ONE_INPUT);
    const req = httpRequest(`${url}/v2/models/classifier/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    const response = new Promise<{ status: number; text: string }>((resolve, reject) => {
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
    });
    req.write(body.slice(0, 10));
    // The server holds the request once its metrics count it as pending.
    await waitUntil('the request to be pending', async () =>
      (await (await fetch(`${url}/metrics`)).text()).includes('nv_inference_pending_request_count{model="classifier",version="1"} 1'),
    );

    run.child.kill('SIGTERM');
    await waitUntil('the shutdown log line', () => run.stdout.some((l) => l.includes('shutting down: finishing in-flight requests')));
    req.end(body.slice(10));

    const { status, text } = await response;
    expect(status).toBe(200);
    expect(JSON.parse(text).model_name).toBe('classifier');
    expect(await run.exited).toEqual({ code: 0, signal: null });
    expect(run.stdout.some((l) => l.includes('"msg":"stopped"'))).toBe(true);
  });

  it('serves a Triton-layout model repository, the highest version by default', async () => {
    for (const [version, file] of [['1', CLASSIFIER_V1], ['2', CLASSIFIER_V2]] as const) {
      await mkdir(path.join(dir, 'classifier', version), { recursive: true });
      await copyFile(file, path.join(dir, 'classifier', version, 'model.onnx'));
    }
    await mkdir(path.join(dir, 'classifier', 'notes'));
    const run = startCli(entry, ['--model-repository', dir, '--port', '0']);
    running.push(run);
    const url = await readyUrl(run);

    const latest = await infer(`${url}/v2/models/classifier`);
    expect(latest.json.model_version).toBe('2');
    logitsOf(latest.json).forEach((v, i) => expect(v).toBeCloseTo(EXPECTED_LOGITS['2.0.0']![i]!, 5));
    const pinned = await infer(`${url}/v2/models/classifier/versions/1`);
    logitsOf(pinned.json).forEach((v, i) => expect(v).toBeCloseTo(EXPECTED_LOGITS['1.0.0']![i]!, 5));
  });

  it('exits 2 and lists every bad option with the usage', async () => {
    const run = startCli(entry, ['--model', 'no-path', '--port', 'eighty']);
    running.push(run);
    expect(await run.exited).toEqual({ code: 2, signal: null });
    const stderr = run.stderr.join('');
    expect(stderr).toContain('--model must be NAME=PATH, got "no-path"');
    expect(stderr).toContain('--port must be an integer from 0 to 65535, got "eighty"');
    expect(stderr).toContain('Usage: flotilla-inference-server');
  });

  it('exits 1 naming the file when the model cannot be loaded', async () => {
    const bad = path.join(dir, 'bad.onnx');
    await writeFile(bad, 'garbage');
    const run = startCli(entry, ['--model', `m=${bad}`, '--port', '0']);
    running.push(run);
    expect(await run.exited).toEqual({ code: 1, signal: null });
    expect(run.stderr.join('')).toContain(`flotilla-inference-server: model m version 1: cannot load ${bad}`);
  });
});
