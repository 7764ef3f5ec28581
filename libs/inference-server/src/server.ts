import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeInferRequest, encodeOutputs } from './infer-request.js';
import { InferenceError, badRequest, notFound } from './errors.js';
import { LoadedModel, type ExecutionProvider, type ExecutionProviderChoice, type ModelSource } from './loaded-model.js';
import { silentLogger, type Logger } from './logger.js';
import { InferenceMetrics } from './metrics.js';
import { latestVersion } from './model-repository.js';

export const SERVER_NAME = 'flotilla-inference-server';
export const SERVER_VERSION = '0.1.0';
/** Triton's platform name for ONNX models, so clients written against Triton read the same metadata. */
export const ONNX_PLATFORM = 'onnxruntime_onnx';
export const DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024;

export interface InferenceServerOptions {
  models: ModelSource[];
  /** Default 127.0.0.1: exposing the server on the network is a deliberate choice of the caller. */
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  executionProvider?: ExecutionProviderChoice;
  /** Larger request bodies get 413. */
  maxRequestBytes?: number;
  logger?: Logger;
}

export interface ServedModel {
  name: string;
  version: string;
  path: string;
  executionProvider: ExecutionProvider;
}

export interface InferenceServer {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly models: readonly ServedModel[];
  readonly metrics: InferenceMetrics;
  /**
   * Stops accepting connections, reports not ready, lets in-flight requests
   * finish (up to `graceMs`, default 30 s, or until `signal` aborts), then
   * drops the remaining connections and releases the models.
   */
  close(opts?: { graceMs?: number; signal?: AbortSignal }): Promise<void>;
}

/** Loads every model, then listens; resolves once the server is ready to infer. */
export async function startInferenceServer(opts: InferenceServerOptions): Promise<InferenceServer> {
  if (opts.models.length === 0) throw new Error('no model to serve: give at least one model');
  const logger = opts.logger ?? silentLogger;
  const maxRequestBytes = opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
  const seen = new Set<string>();
  for (const m of opts.models) {
    const key = `${m.name}@${m.version}`;
    if (seen.has(key)) throw new Error(`model ${m.name} version ${m.version} is given twice`);
    seen.add(key);
  }

  const loaded: LoadedModel[] = [];
  try {
    for (const source of opts.models) {
      loaded.push(await LoadedModel.load(source, opts.executionProvider ?? 'auto', logger));
    }
  } catch (err) {
    await Promise.all(loaded.map((m) => m.dispose()));
    throw err;
  }

  const metrics = new InferenceMetrics();
  const byName = new Map<string, Map<string, LoadedModel>>();
  for (const m of loaded) {
    const versions = byName.get(m.name) ?? new Map<string, LoadedModel>();
    versions.set(m.version, m);
    byName.set(m.name, versions);
    metrics.registerModel({ model: m.name, version: m.version }, m.executionProvider);
  }

  const state = { draining: false, inFlight: 0, idle: [] as (() => void)[] };
  const handler = new RequestHandler(byName, metrics, maxRequestBytes, () => !state.draining, logger);
  const server = createServer((req, res) => {
    state.inFlight += 1;
    res.on('close', () => {
      state.inFlight -= 1;
      if (state.inFlight === 0) state.idle.splice(0).forEach((resolve) => resolve());
    });
    // Keep-alive clients must not reuse a connection to a server that is going away.
    if (state.draining) res.setHeader('Connection', 'close');
    void handler.handle(req, res);
  });

  try {
    await listen(server, opts.port ?? 0, opts.host ?? '127.0.0.1');
  } catch (err) {
    await Promise.all(loaded.map((m) => m.dispose()));
    throw err;
  }
  const address = server.address() as AddressInfo;
  const host = opts.host ?? '127.0.0.1';
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${urlHost}:${address.port}`;
  let closing: Promise<void> | undefined;

  return {
    url,
    host,
    port: address.port,
    models: loaded.map((m) => ({ name: m.name, version: m.version, path: m.path, executionProvider: m.executionProvider })),
    metrics,
    close(closeOpts = {}) {
      closing ??= (async () => {
        state.draining = true;
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        if (state.inFlight > 0) {
          await waitForIdle(state, closeOpts.graceMs ?? 30_000, closeOpts.signal);
        }
        server.closeAllConnections();
        await stopped;
        await Promise.all(loaded.map((m) => m.dispose()));
      })();
      return closing;
    },
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'EADDRINUSE'
          ? new Error(`port ${port} on ${host} is already in use; choose another with --port`)
          : new Error(`cannot listen on ${host}:${port}: ${err.message}`),
      );
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function waitForIdle(state: { inFlight: number; idle: (() => void)[] }, graceMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, graceMs);
    signal?.addEventListener('abort', done, { once: true });
    state.idle.push(done);
  });
}

type Route =
  | { kind: 'live' }
  | { kind: 'ready' }
  | { kind: 'server-metadata' }
  | { kind: 'metrics' }
  | { kind: 'model-metadata' | 'model-ready' | 'infer'; name: string; version: string | undefined };

const ROUTE_METHODS: Record<Route['kind'], 'GET' | 'POST'> = {
  live: 'GET',
  ready: 'GET',
  'server-metadata': 'GET',
  metrics: 'GET',
  'model-metadata': 'GET',
  'model-ready': 'GET',
  infer: 'POST',
};

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw badRequest(`malformed percent-encoding in path segment "${segment}"`);
  }
}

function route(pathname: string): Route | undefined {
  const parts = pathname.split('/').filter((p) => p !== '');
  if (parts.length === 1 && parts[0] === 'metrics') return { kind: 'metrics' };
  if (parts[0] !== 'v2') return undefined;
  if (parts.length === 1) return { kind: 'server-metadata' };
  if (parts.length === 3 && parts[1] === 'health') {
    if (parts[2] === 'live') return { kind: 'live' };
    if (parts[2] === 'ready') return { kind: 'ready' };
    return undefined;
  }
  if (parts[1] !== 'models' || parts.length < 3) return undefined;
  const name = decodeSegment(parts[2] as string);
  let rest = parts.slice(3);
  let version: string | undefined;
  if (rest[0] === 'versions') {
    if (rest.length < 2) return undefined;
    version = decodeSegment(rest[1] as string);
    rest = rest.slice(2);
  }
  if (rest.length === 0) return { kind: 'model-metadata', name, version };
  if (rest.length === 1 && rest[0] === 'ready') return { kind: 'model-ready', name, version };
  if (rest.length === 1 && rest[0] === 'infer') return { kind: 'infer', name, version };
  return undefined;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(new InferenceError(413, `request body of ${declared} bytes exceeds the limit of ${limit} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        reject(new InferenceError(413, `request body exceeds the limit of ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

const microsSince = (start: bigint): number => Number((process.hrtime.bigint() - start) / 1000n);

class RequestHandler {
  constructor(
    private readonly models: Map<string, Map<string, LoadedModel>>,
    private readonly metrics: InferenceMetrics,
    private readonly maxRequestBytes: number,
    private readonly isReady: () => boolean,
    private readonly logger: Logger,
  ) {}

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const { pathname } = new URL(req.url ?? '/', 'http://server');
      const target = route(pathname);
      if (!target) throw notFound(`no route for ${req.method} ${pathname}`);
      const method = ROUTE_METHODS[target.kind];
      if (req.method !== method && !(method === 'GET' && req.method === 'HEAD')) {
        res.setHeader('Allow', method);
        throw new InferenceError(405, `${req.method} is not allowed on ${pathname}; use ${method}`);
      }
      await this.dispatch(target, req, res);
    } catch (err) {
      this.fail(res, err);
    }
  }

  private fail(res: ServerResponse, err: unknown): void {
    const status = err instanceof InferenceError ? err.status : 500;
    const message = err instanceof Error ? err.message : String(err);
    if (status >= 500) this.logger.error({ err: message }, 'request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // After a 413 the rest of the body is not read: the connection cannot be reused.
    if (status === 413) res.setHeader('Connection', 'close');
    sendJson(res, status, { error: message });
  }

  private lookup(name: string, version: string | undefined): LoadedModel {
    const versions = this.models.get(name);
    if (!versions) throw notFound(`unknown model "${name}"`);
    const chosen = version ?? latestVersion([...versions.keys()]);
    const model = chosen === undefined ? undefined : versions.get(chosen);
    if (!model) throw notFound(`model "${name}" has no version "${version}"; versions: ${[...versions.keys()].join(', ')}`);
    return model;
  }

  private async dispatch(target: Route, req: IncomingMessage, res: ServerResponse): Promise<void> {
    switch (target.kind) {
      case 'live':
        return sendJson(res, 200, { live: true });
      case 'ready':
        // The protocol says 200 is true and 4xx is false.
        return this.isReady() ? sendJson(res, 200, { ready: true }) : sendJson(res, 400, { error: 'server is shutting down', ready: false });
      case 'server-metadata':
        return sendJson(res, 200, { name: SERVER_NAME, version: SERVER_VERSION, extensions: [] });
      case 'metrics': {
        const { contentType, body } = await this.metrics.exposition();
        res.writeHead(200, { 'Content-Type': contentType });
        res.end(body);
        return;
      }
      case 'model-metadata': {
        const model = this.lookup(target.name, target.version);
        return sendJson(res, 200, {
          name: model.name,
          versions: [...(this.models.get(model.name)?.keys() ?? [])],
          platform: ONNX_PLATFORM,
          inputs: model.signature.inputs,
          outputs: model.signature.outputs,
          parameters: { execution_provider: model.executionProvider },
        });
      }
      case 'model-ready': {
        this.lookup(target.name, target.version);
        return this.isReady() ? sendJson(res, 200, { ready: true }) : sendJson(res, 400, { error: 'server is shutting down', ready: false });
      }
      case 'infer':
        return this.infer(target.name, target.version, req, res);
    }
  }

  private async infer(name: string, version: string | undefined, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const model = this.lookup(name, version);
    const labels = { model: model.name, version: model.version };
    if (req.headers['inference-header-content-length'] !== undefined) {
      this.metrics.recordFailure(labels, microsSince(started));
      throw badRequest('the binary tensor data extension is not supported; send a JSON body');
    }
    // A client that disconnects while its request waits in the queue is not executed.
    const gone = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) gone.abort();
    });
    this.metrics.pendingChanged(labels, 1);
    try {
      const raw = await readBody(req, this.maxRequestBytes);
      let body: unknown;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch (err) {
        throw badRequest(`request body is not valid JSON: ${(err as Error).message}`);
      }
      const decodeStart = process.hrtime.bigint();
      const decoded = decodeInferRequest(body, model.signature);
      const computeInputUs = microsSince(decodeStart);
      let run;
      try {
        run = await model.run(decoded.feeds, decoded.outputNames, gone.signal);
      } catch (err) {
        if (gone.signal.aborted) throw badRequest('client went away before the request ran');
        throw new InferenceError(500, `inference failed: ${(err as Error).message}`);
      }
      const encodeStart = process.hrtime.bigint();
      const outputs = encodeOutputs(run.results, decoded.outputNames);
      const response: Record<string, unknown> = { model_name: model.name, model_version: model.version, outputs };
      if (decoded.id !== undefined) response.id = decoded.id;
      const computeOutputUs = microsSince(encodeStart);
      sendJson(res, 200, response);
      this.metrics.recordSuccess(labels, decoded.batchSize, {
        requestUs: microsSince(started),
        queueUs: run.queueUs,
        computeInputUs,
        computeInferUs: run.computeInferUs,
        computeOutputUs,
      });
    } catch (err) {
      this.metrics.recordFailure(labels, microsSince(started));
      throw err;
    } finally {
      this.metrics.pendingChanged(labels, -1);
    }
  }
}
