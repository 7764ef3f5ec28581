/**
 * @jest-environment ./libs/inference-server/jest-environment.mjs
 */
import { request as httpRequest } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startInferenceServer, type InferenceServer } from './server.js';

const fixtures = fileURLToPath(new URL('../../../test/fixtures/models/', import.meta.url));
const V1 = path.join(fixtures, 'linear-classifier-1.0.0.onnx');
const V2 = path.join(fixtures, 'linear-classifier-2.0.0.onnx');
const ADDER = path.join(fixtures, 'int64-adder.onnx');

/** softmax computed the long way, to compare the server against arithmetic rather than against itself. */
function softmax(logits: number[]): number[] {
  const exps = logits.map((x) => Math.exp(x));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

function expectClose(actual: unknown, expected: number[]): void {
  expect(Array.isArray(actual)).toBe(true);
  const values = actual as number[];
  expect(values).toHaveLength(expected.length);
  values.forEach((v, i) => expect(v).toBeCloseTo(expected[i] as number, 5));
}

async function post(server: InferenceServer, urlPath: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${server.url}${urlPath}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function get(server: InferenceServer, urlPath: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${server.url}${urlPath}`);
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const classifierInput = (data: unknown, shape: unknown = [2, 4], datatype: unknown = 'FP32') => ({
  inputs: [{ name: 'input', shape, datatype, data }],
});

describe('inference server', () => {
  let server: InferenceServer;

  beforeAll(async () => {
    server = await startInferenceServer({
      models: [
        { name: 'classifier', version: '1.0.0', path: V1 },
        { name: 'classifier', version: '2.0.0', path: V2 },
        { name: 'adder', version: '1', path: ADDER },
      ],
      maxRequestBytes: 4096,
    });
  });
  afterAll(() => server.close());

  describe('inference', () => {
    it('returns the hand-computed logits and softmax probabilities of the latest version', async () => {
      // v2: logits = [2 x0 - 0.5, 2 x1, 2 x2 + 0.5]
      const { status, json } = await post(server, '/v2/models/classifier/infer', classifierInput([0, 0, 0, 0, 1, 2, 3, 4]));
      expect(status).toBe(200);
      expect(json.model_name).toBe('classifier');
      expect(json.model_version).toBe('2.0.0');
      const outputs = json.outputs as { name: string; datatype: string; shape: number[]; data: number[] }[];
      expect(outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([
        ['logits', 'FP32', [2, 3]],
        ['probabilities', 'FP32', [2, 3]],
      ]);
      expectClose(outputs[0]?.data, [-0.5, 0, 0.5, 1.5, 4, 6.5]);
      expectClose(outputs[1]?.data, [...softmax([-0.5, 0, 0.5]), ...softmax([1.5, 4, 6.5])]);
    });

    it('serves an explicit version under /versions/V and accepts nested data', async () => {
      // v1: logits = [x0 + x3 + 0.5, x1 + x3, x2 + x3 - 0.5]
      const { status, json } = await post(
        server,
        '/v2/models/classifier/versions/1.0.0/infer',
        classifierInput([[1, 2, 3, 4]], [1, 4]),
      );
      expect(status).toBe(200);
      expect(json.model_version).toBe('1.0.0');
      const outputs = json.outputs as { name: string; data: number[] }[];
      expectClose(outputs[0]?.data, [5.5, 6, 6.5]);
      expectClose(outputs[1]?.data, softmax([5.5, 6, 6.5]));
    });

    it('returns only the requested outputs and echoes the request id', async () => {
      const { status, json } = await post(server, '/v2/models/classifier/infer', {
        id: 'req-42',
        ...classifierInput([0, 0, 0, 0], [1, 4]),
        outputs: [{ name: 'probabilities' }],
      });
      expect(status).toBe(200);
      expect(json.id).toBe('req-42');
      const outputs = json.outputs as { name: string; data: number[] }[];
      expect(outputs.map((o) => o.name)).toEqual(['probabilities']);
      expectClose(outputs[0]?.data, softmax([-0.5, 0, 0.5]));
    });

    it('adds INT64 tensors exactly', async () => {
      const { status, json } = await post(server, '/v2/models/adder/infer', {
        inputs: [
          { name: 'a', shape: [2, 2], datatype: 'INT64', data: [1, 2, 3, -4] },
          { name: 'b', shape: [2, 2], datatype: 'INT64', data: [[10, 20], [30, 40]] },
        ],
      });
      expect(status).toBe(200);
      expect(json.outputs).toEqual([{ name: 'sum', datatype: 'INT64', shape: [2, 2], data: [11, 22, 33, 36] }]);
    });
  });

  describe('metadata and health', () => {
    it('describes a model with its versions, platform, and the datatype and shape of each tensor', async () => {
      const { status, json } = await get(server, '/v2/models/classifier');
      expect(status).toBe(200);
      expect(json).toEqual({
        name: 'classifier',
        versions: ['1.0.0', '2.0.0'],
        platform: 'onnxruntime_onnx',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }],
        outputs: [
          { name: 'logits', datatype: 'FP32', shape: [-1, 3] },
          { name: 'probabilities', datatype: 'FP32', shape: [-1, 3] },
        ],
        parameters: { execution_provider: server.models[0]?.executionProvider },
      });
      expect(['cpu', 'cuda']).toContain(server.models[0]?.executionProvider);
    });

    it('answers live, ready, server metadata and per-model readiness', async () => {
      expect((await get(server, '/v2/health/live')).status).toBe(200);
      expect((await get(server, '/v2/health/ready')).status).toBe(200);
      expect((await get(server, '/v2/models/classifier/ready')).status).toBe(200);
      expect((await get(server, '/v2/models/classifier/versions/1.0.0/ready')).status).toBe(200);
      const meta = await get(server, '/v2');
      expect(meta).toEqual({ status: 200, json: { name: 'flotilla-inference-server', version: expect.any(String), extensions: [] } });
    });
  });

  describe('bad requests', () => {
    it.each([
      ['a shape of the wrong rank', classifierInput([0, 0, 0, 0], [4]), 'shape [4] has rank 1, the model expects rank 2 [?, 4]'],
      ['a fixed dimension that differs', classifierInput([0, 0, 0, 0, 0, 0], [2, 3]), 'does not match the model\'s [?, 4] at dimension 1'],
      ['data that does not fill the shape', classifierInput([0, 0, 0], [1, 4]), 'shape [1, 4] holds 4 elements but "data" has 3'],
      ['a datatype other than the model\'s', classifierInput([0, 0, 0, 0], [1, 4], 'INT32'), 'datatype INT32 does not match the model\'s FP32'],
      ['an unknown datatype', classifierInput([0, 0, 0, 0], [1, 4], 'FLOAT'), 'datatype "FLOAT" is not one of BOOL'],
      ['a string where a number belongs', classifierInput([0, 'x', 0, 0], [1, 4]), 'element 1 is "x", expected a finite number'],
      ['a negative dimension', classifierInput([], [-1, 4]), 'shape[0] is -1, expected a non-negative integer'],
      ['an input the model does not have', { inputs: [{ name: 'pixels', shape: [1], datatype: 'FP32', data: [1] }] }, 'input "pixels" is not an input of this model; inputs are "input"'],
      ['no inputs', { inputs: [] }, '"inputs" must be a non-empty array'],
      ['a body that is not an object', [1, 2], 'request body must be a JSON object'],
      ['an output the model does not have', { ...classifierInput([0, 0, 0, 0], [1, 4]), outputs: [{ name: 'scores' }] }, 'output "scores" is not an output of this model'],
      ['a non-string id', { id: 7, ...classifierInput([0, 0, 0, 0], [1, 4]) }, '"id" must be a string'],
      ['binary tensor data', { ...classifierInput([0, 0, 0, 0], [1, 4]), parameters: { binary_data_output: true } }, 'binary tensor data extension is not supported'],
    ])('rejects %s with 400 and says why', async (_case, body, message) => {
      const { status, json } = await post(server, '/v2/models/classifier/infer', body);
      expect(status).toBe(400);
      expect(json.error).toEqual(expect.stringContaining(message));
    });

    it('rejects a missing input of a two-input model', async () => {
      const { status, json } = await post(server, '/v2/models/adder/infer', {
        inputs: [{ name: 'a', shape: [1, 2], datatype: 'INT64', data: [1, 2] }],
      });
      expect(status).toBe(400);
      expect(json.error).toBe('missing input "b"');
    });

    it('rejects an INT64 value that is not an integer', async () => {
      const { status, json } = await post(server, '/v2/models/adder/infer', {
        inputs: [
          { name: 'a', shape: [1, 2], datatype: 'INT64', data: [1, 2.5] },
          { name: 'b', shape: [1, 2], datatype: 'INT64', data: [1, 2] },
        ],
      });
      expect(status).toBe(400);
      expect(json.error).toContain('input "a": element 1 is 2.5, expected an integer');
    });

    it('rejects a body that is not JSON', async () => {
      const { status, json } = await post(server, '/v2/models/classifier/infer', '{"inputs": [');
      expect(status).toBe(400);
      expect(json.error).toContain('request body is not valid JSON');
    });

    it('rejects a body over the size limit with 413', async () => {
      const body = classifierInput(new Array(4000).fill(0), [1000, 4]);
      const { status, json } = await post(server, '/v2/models/classifier/infer', body);
      expect(status).toBe(413);
      expect(json.error).toBe(`request body of ${Buffer.byteLength(JSON.stringify(body))} bytes exceeds the limit of 4096 bytes`);
    });

    it('rejects a chunked body that grows over the size limit with 413', async () => {
      const status = await new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = httpRequest(`${server.url}/v2/models/classifier/infer`, { method: 'POST' });
        req.on('response', (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        });
        req.on('error', reject);
        // No content-length: the limit can only be enforced while reading.
        req.write(' '.repeat(3000));
        req.end(' '.repeat(3000));
      });
      expect(status).toEqual({ status: 413, text: JSON.stringify({ error: 'request body exceeds the limit of 4096 bytes' }) });
    });

    it('answers 404 for an unknown model, an unknown version and an unknown route', async () => {
      expect(await post(server, '/v2/models/nope/infer', classifierInput([0, 0, 0, 0], [1, 4]))).toEqual({
        status: 404,
        json: { error: 'unknown model "nope"' },
      });
      expect(await get(server, '/v2/models/classifier/versions/9')).toEqual({
        status: 404,
        json: { error: 'model "classifier" has no version "9"; versions: 1.0.0, 2.0.0' },
      });
      expect(await get(server, '/v2/models/nope/ready')).toEqual({ status: 404, json: { error: 'unknown model "nope"' } });
      expect(await get(server, '/v3/anything')).toEqual({ status: 404, json: { error: 'no route for GET /v3/anything' } });
    });

    it('answers 405 to GET on the inference endpoint', async () => {
      const res = await fetch(`${server.url}/v2/models/classifier/infer`);
      expect(res.status).toBe(405);
      expect(res.headers.get('allow')).toBe('POST');
      expect(await res.json()).toEqual({ error: 'GET is not allowed on /v2/models/classifier/infer; use POST' });
    });
  });
});

describe('inference server metrics', () => {
  it('counts successes, failures, inferences and executions per model and version in Triton\'s names', async () => {
    const server = await startInferenceServer({ models: [{ name: 'classifier', version: '1.0.0', path: V1 }] });
    try {
      const infer = (body: unknown) => post(server, '/v2/models/classifier/infer', body);
      expect((await infer(classifierInput([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2], [3, 4]))).status).toBe(200);
      expect((await infer(classifierInput([0, 0, 0, 0], [1, 4]))).status).toBe(200);
      expect((await infer(classifierInput([0, 0, 0], [1, 3]))).status).toBe(400);

      const res = await fetch(`${server.url}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain('text/plain');
      const text = await res.text();
      const value = (name: string): number => {
        const line = text.split('\n').find((l) => l.startsWith(`${name}{model="classifier",version="1.0.0"}`));
        if (!line) throw new Error(`${name} not exposed:\n${text}`);
        return Number(line.split(' ').at(-1));
      };
      expect(value('nv_inference_request_success')).toBe(2);
      expect(value('nv_inference_request_failure')).toBe(1);
      expect(value('nv_inference_count')).toBe(4);
      expect(value('nv_inference_exec_count')).toBe(2);
      expect(value('nv_inference_pending_request_count')).toBe(0);
      for (const counter of ['nv_inference_request_duration_us', 'nv_inference_queue_duration_us', 'nv_inference_compute_infer_duration_us']) {
        expect(value(counter)).toBeGreaterThanOrEqual(0);
      }
      expect(text).toContain('flotilla_inference_request_duration_seconds_count{model="classifier",version="1.0.0",outcome="success"} 2');
      expect(text).toContain('flotilla_inference_request_duration_seconds_count{model="classifier",version="1.0.0",outcome="failure"} 1');
      expect(text).toMatch(/flotilla_inference_execution_provider_info\{model="classifier",version="1.0.0",provider="(cpu|cuda)"\} 1/);
    } finally {
      await server.close();
    }
  });

  it('keeps counters of two servers in one process apart', async () => {
    const a = await startInferenceServer({ models: [{ name: 'classifier', version: '1.0.0', path: V1 }] });
    const b = await startInferenceServer({ models: [{ name: 'classifier', version: '1.0.0', path: V1 }] });
    try {
      await post(a, '/v2/models/classifier/infer', classifierInput([0, 0, 0, 0], [1, 4]));
      const textB = await (await fetch(`${b.url}/metrics`)).text();
      expect(textB).toContain('nv_inference_request_success{model="classifier",version="1.0.0"} 0');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe('inference server lifecycle', () => {
  it('finishes an in-flight request after close() and refuses new connections meanwhile', async () => {
    const server = await startInferenceServer({ models: [{ name: 'classifier', version: '1.0.0', path: V1 }] });
    const body = JSON.stringify(classifierInput([0, 0, 0, 0], [1, 4]));
    const half = Math.floor(body.length / 2);
    const req = httpRequest(`${server.url}/v2/models/classifier/infer`, {
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
    // Half the body now, the rest once the server is draining.
    req.write(body.slice(0, half));
    // Wait until the server holds the request (it counts it as pending).
    const pending = server.metrics.registry.getSingleMetric('nv_inference_pending_request_count');
    for (;;) {
      const { values } = await pending!.get();
      if (values.some((v) => v.value === 1)) break;
      await new Promise((r) => setImmediate(r));
    }
    const closed = server.close({ graceMs: 30_000 });
    await expect(fetch(`${server.url}/v2/health/live`)).rejects.toThrow();
    req.end(body.slice(half));
    const { status, text } = await response;
    expect(status).toBe(200);
    expect(JSON.parse(text).model_name).toBe('classifier');
    await closed;
  });

  it('refuses to start on a file that is not an ONNX model, naming the model and the file', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-is-'));
    try {
      const bad = path.join(dir, 'model.onnx');
      await writeFile(bad, 'this is not protobuf');
      await expect(startInferenceServer({ models: [{ name: 'broken', version: '1', path: bad }] })).rejects.toThrow(
        `model broken version 1: cannot load ${bad}`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses to start with a missing file, a bad name or the same version twice', async () => {
    await expect(startInferenceServer({ models: [{ name: 'm', version: '1', path: '/nonexistent/model.onnx' }] })).rejects.toThrow(
      'file /nonexistent/model.onnx does not exist',
    );
    await expect(startInferenceServer({ models: [{ name: 'a/b', version: '1', path: V1 }] })).rejects.toThrow('model name "a/b" must be');
    await expect(
      startInferenceServer({ models: [{ name: 'm', version: '1', path: V1 }, { name: 'm', version: '1', path: V2 }] }),
    ).rejects.toThrow('model m version 1 is given twice');
    await expect(startInferenceServer({ models: [] })).rejects.toThrow('no model to serve');
  });

  it('refuses a port that is taken, naming it', async () => {
    const first = await startInferenceServer({ models: [{ name: 'm', version: '1', path: V1 }] });
    try {
      await expect(startInferenceServer({ models: [{ name: 'm', version: '1', path: V1 }], port: first.port })).rejects.toThrow(
        `port ${first.port} on 127.0.0.1 is already in use`,
      );
    } finally {
      await first.close();
    }
  });
});
