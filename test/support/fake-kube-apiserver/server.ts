import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { cloneJson, isJsonObject, metadataOf, type JsonObject, type JsonValue } from './json.js';
import { applyJsonPatch, applyMergePatch } from './patches.js';
import { discoveryDocument, findResourceByPath, groupVersionOf, type ResourceType } from './resources.js';
import { type FieldValidation, parseFieldValidation } from './field-validation.js';
import { openApiV2Document, openApiV3Document, openApiV3Index } from './openapi.js';
import { encodeOpenApiV2, OPENAPI_V2_PROTOBUF, OPENAPI_V2_PROTOBUF_RETURNED } from './openapi-v2-protobuf.js';
import { hasSubresource, requestedReplicas, scaleOf } from './scale.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import { ApiError, badRequest } from './status.js';
import { type ListFilter, type ObjectStore, type PatchType, type StoreEvent } from './store.js';
import { toTable, wantsTable } from './tables.js';

/** One request as the fake saw it, like an audit log line; tests use it to prove what a client did and did not do. */
export interface AuditEntry {
  verb: 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection' | 'discovery';
  method: string;
  path: string;
  query: Record<string, string>;
  resource?: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  fieldManager?: string;
  contentType?: string;
  code: number;
}

export interface HttpLayerOptions {
  token?: string;
  /** Whether the server honours (and its OpenAPI advertises) the fieldValidation parameter, as since Kubernetes 1.25. */
  serverSideFieldValidation: boolean;
  bookmarkIntervalMs: number;
  maxBodyBytes: number;
}

interface ResourcePath {
  type: ResourceType;
  namespace: string | undefined;
  name: string | undefined;
  subresource: string | undefined;
  watchPrefix: boolean;
}

const PATCH_TYPES: Record<string, PatchType> = {
  'application/merge-patch+json': 'merge',
  'application/strategic-merge-patch+json': 'strategic',
  'application/json-patch+json': 'json',
  'application/apply-patch+yaml': 'apply',
};

function notFoundPath(): ApiError {
  return new ApiError(404, 'NotFound', 'the server could not find the requested resource');
}

function parseResourcePath(pathname: string): ResourcePath | undefined {
  const segments = pathname.split('/').filter((s) => s !== '').map(decodeURIComponent);
  let group: string;
  let version: string;
  let rest: string[];
  if (segments[0] === 'api' && segments.length >= 2) {
    group = '';
    version = segments[1]!;
    rest = segments.slice(2);
  } else if (segments[0] === 'apis' && segments.length >= 3) {
    group = segments[1]!;
    version = segments[2]!;
    rest = segments.slice(3);
  } else {
    return undefined;
  }
  const watchPrefix = rest[0] === 'watch';
  if (watchPrefix) rest = rest.slice(1);
  if (rest.length === 0) return undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    const type = findResourceByPath(group, version, rest[2]!);
    if (type?.namespaced) {
      if (rest.length > 5) return undefined;
      return { type, namespace: rest[1], name: rest[3], subresource: rest[4], watchPrefix };
    }
  }
  const type = findResourceByPath(group, version, rest[0]!);
  if (!type || rest.length > 3) return undefined;
  return { type, namespace: undefined, name: rest[1], subresource: rest[2], watchPrefix };
}

async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > limit) throw new ApiError(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${limit}`);
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseBody(text: string, contentType: string): JsonValue {
  if (text.trim() === '') throw badRequest('the request body is empty');
  try {
    if (contentType.includes('yaml')) return parseYaml(text) as JsonValue;
    return JSON.parse(text) as JsonValue;
  } catch (err) {
    throw badRequest(`the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (${(err as Error).message})`);
  }
}

function sendJson(res: ServerResponse, code: number, body: JsonObject, warnings: string[] = []): void {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    // RFC 7234 warnings, as the real server reports dropped unknown fields: `299 - "unknown field \"spec.x\""`.
    ...(warnings.length > 0 ? { Warning: warnings.map((w) => `299 - ${JSON.stringify(w)}`) } : {}),
  });
  res.end(text);
}

/** The body kubectl gets for `GET` on a resource: a Table when its Accept header asks for one first. */
function tableOrObject(req: IncomingMessage, url: URL, type: ResourceType, objects: JsonObject[], resourceVersion: string, continueToken?: string): JsonObject | undefined {
  const version = wantsTable(req.headers.accept);
  if (!version) return undefined;
  return toTable(type, objects, {
    version,
    includeObject: url.searchParams.get('includeObject'),
    resourceVersion,
    ...(continueToken ? { continueToken } : {}),
  });
}

/** Items of a list carry no apiVersion/kind on the real server; clients must not rely on them. */
function listItem(obj: JsonObject): JsonObject {
  const { apiVersion: _a, kind: _k, ...rest } = obj;
  return rest;
}

/** Serves the Kubernetes REST API over the ObjectStore. */
export class HttpLayer {
  readonly server: Server;
  /** Open watch streams and how to stop feeding each. */
  private readonly watches = new Map<ServerResponse, () => void>();
  private readonly audit: AuditEntry[] = [];
  /** Container logs by "namespace/pod": nothing in the fake runs containers, so a test writes them (playing the kubelet). */
  readonly podLogs = new Map<string, string>();
  private serverAddress = '127.0.0.1:0';

  constructor(
    private readonly store: ObjectStore,
    private readonly opts: HttpLayerOptions,
  ) {
    this.server = createServer((req, res) => {
      void this.handle(req, res);
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = this.server.address() as AddressInfo;
    this.serverAddress = `127.0.0.1:${port}`;
    return `http://127.0.0.1:${port}`;
  }

  requests(): AuditEntry[] {
    return [...this.audit];
  }

  clearRequests(): void {
    this.audit.splice(0, this.audit.length);
  }

  /** Ends every open watch stream, as an API server restart or a watch timeout does. */
  dropWatches(): number {
    const open = [...this.watches.entries()];
    for (const [res, stop] of open) {
      stop();
      res.end();
    }
    return open.length;
  }

  async close(): Promise<void> {
    this.dropWatches();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private record(entry: AuditEntry): void {
    this.audit.push(entry);
    if (this.audit.length > 10_000) this.audit.shift();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const query = Object.fromEntries(url.searchParams.entries());
    const entry: AuditEntry = { verb: 'get', method: req.method ?? 'GET', path: url.pathname, query, code: 200 };
    try {
      if (this.opts.token !== undefined && req.headers.authorization !== `Bearer ${this.opts.token}`) {
        throw new ApiError(401, 'Unauthorized', 'Unauthorized');
      }
      if (req.method === 'GET' && (url.pathname === '/openapi/v2' || url.pathname.startsWith('/openapi/v3'))) {
        entry.verb = 'discovery';
        this.serveOpenApi(req, res, url.pathname.replace(/\/$/, ''));
        this.record(entry);
        return;
      }
      const discovery = discoveryDocument(url.pathname.replace(/\/$/, ''), this.serverAddress);
      if (req.method === 'GET' && (discovery || url.pathname === '/version')) {
        entry.verb = 'discovery';
        sendJson(res, 200, discovery ?? { major: '1', minor: '33', gitVersion: 'v1.33.0-flotilla-fake', platform: 'linux/amd64' });
        this.record(entry);
        return;
      }
      const path = parseResourcePath(url.pathname);
      if (!path) throw notFoundPath();
      entry.resource = path.type.plural;
      if (path.namespace !== undefined) entry.namespace = path.namespace;
      if (path.name !== undefined) entry.name = path.name;
      if (path.subresource !== undefined) entry.subresource = path.subresource;
      await this.dispatch(req, res, url, path, entry);
    } catch (err) {
      const apiError =
        err instanceof ApiError ? err : new ApiError(500, 'InternalError', `Internal error occurred: ${(err as Error).message}`);
      entry.code = apiError.code;
      if (!res.headersSent) sendJson(res, apiError.code, apiError.toStatus());
      else res.end();
    }
    this.record(entry);
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse, url: URL, path: ResourcePath, entry: AuditEntry): Promise<void> {
    const { type, namespace, name, subresource } = path;
    const q = url.searchParams;
    if (subresource !== undefined && !hasSubresource(type, subresource)) throw notFoundPath();
    if (type.namespaced && namespace === undefined && name !== undefined) throw notFoundPath();
    const method = req.method ?? 'GET';
    const manager = q.get('fieldManager') ?? defaultManager(req);
    const dryRun = q.get('dryRun');
    if (dryRun !== null && dryRun !== 'All') {
      throw new ApiError(400, 'BadRequest', `Invalid dryRun value: ${dryRun}: supported values: "All"`);
    }
    if (subresource === 'log' && method === 'GET') {
      entry.verb = 'get';
      this.store.get(type, namespace, name!);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(this.podLogs.get(`${namespace}/${name}`) ?? '');
      return;
    }
    if (subresource === 'scale') {
      await this.serveScale(req, res, type, namespace, name!, manager, dryRun === 'All', entry);
      return;
    }
    const scope = subresource === 'status' ? ({ subresource: 'status' } as const) : {};
    // A server without field validation decoded leniently: unknown fields were dropped without a word.
    const mode = this.opts.serverSideFieldValidation ? parseFieldValidation(q.get('fieldValidation')) : 'Ignore';
    const fieldValidation: FieldValidation = { mode, style: 'decode', warnings: [] };

    if (method === 'GET' && name === undefined) {
      const filter: ListFilter = {
        namespace,
        labels: parseLabelSelector(q.get('labelSelector')),
        fields: parseFieldSelector(q.get('fieldSelector'), ['metadata.name', ...(type.namespaced ? ['metadata.namespace'] : []), ...type.extraFieldSelectors]),
      };
      const watch = path.watchPrefix || q.get('watch') === 'true' || q.get('watch') === '1';
      if (watch) {
        entry.verb = 'watch';
        this.serveWatch(req, res, type, filter, q);
        return;
      }
      entry.verb = 'list';
      const list = this.listResponse(type, filter, q);
      const listMeta = list['metadata'] as JsonObject;
      const continueToken = typeof listMeta['continue'] === 'string' ? listMeta['continue'] : undefined;
      sendJson(res, 200, tableOrObject(req, url, type, (list['items'] as JsonObject[]).map((i) => this.withIdentity(type, i)), String(listMeta['resourceVersion']), continueToken) ?? list);
      return;
    }
    if (method === 'GET') {
      entry.verb = 'get';
      const obj = this.store.get(type, namespace, name!);
      sendJson(res, 200, tableOrObject(req, url, type, [obj], String(metadataOf(obj)['resourceVersion'])) ?? obj);
      return;
    }
    if (method === 'POST' && name === undefined && subresource === undefined) {
      entry.verb = 'create';
      entry.fieldManager = manager;
      const body = parseBody(await readBody(req, this.opts.maxBodyBytes), req.headers['content-type'] ?? 'application/json');
      if (!isJsonObject(body)) throw badRequest('the request body must be an object');
      const created = this.store.create(type, namespace, body, { manager, dryRun: dryRun === 'All', fieldValidation });
      entry.name = String(metadataOf(created)['name']);
      sendJson(res, 201, created, fieldValidation.warnings);
      return;
    }
    if (method === 'PUT' && name !== undefined) {
      entry.verb = 'update';
      entry.fieldManager = manager;
      const body = parseBody(await readBody(req, this.opts.maxBodyBytes), req.headers['content-type'] ?? 'application/json');
      if (!isJsonObject(body)) throw badRequest('the request body must be an object');
      sendJson(res, 200, this.store.replace(type, namespace, name, body, { manager, dryRun: dryRun === 'All', ...scope, fieldValidation }), fieldValidation.warnings);
      return;
    }
    if (method === 'PATCH' && name !== undefined) {
      entry.verb = 'patch';
      const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
      entry.contentType = contentType;
      const patchType = PATCH_TYPES[contentType];
      if (!patchType) {
        throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${Object.keys(PATCH_TYPES).join(', ')}`);
      }
      const force = q.get('force');
      const fieldManager = q.get('fieldManager');
      if (patchType === 'apply' && !fieldManager) {
        throw new ApiError(422, 'Invalid', 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch');
      }
      entry.fieldManager = fieldManager ?? manager;
      const body = parseBody(await readBody(req, this.opts.maxBodyBytes), patchType === 'apply' ? 'yaml' : 'json');
      const existed = this.store.find(type, namespace, name) !== undefined;
      const result = this.store.patch(type, namespace, name, patchType, body, {
        manager: fieldManager ?? manager,
        dryRun: dryRun === 'All',
        ...scope,
        ...(force !== null ? { force: force === 'true' || force === '1' } : {}),
        fieldValidation: { ...fieldValidation, style: patchType === 'apply' ? 'apply' : 'patch', patch: body },
      });
      sendJson(res, existed ? 200 : 201, result, fieldValidation.warnings);
      return;
    }
    if (method === 'DELETE') {
      const text = await readBody(req, this.opts.maxBodyBytes);
      const options = text.trim() === '' ? {} : parseBody(text, 'json');
      const opts = isJsonObject(options) ? options : {};
      const preconditions = isJsonObject(opts['preconditions']) ? opts['preconditions'] : {};
      const policy = q.get('propagationPolicy') ?? (typeof opts['propagationPolicy'] === 'string' ? opts['propagationPolicy'] : undefined);
      const deleteOpts = {
        ...(policy !== undefined ? { propagationPolicy: policy } : {}),
        preconditions: {
          ...(typeof preconditions['uid'] === 'string' ? { uid: preconditions['uid'] } : {}),
          ...(typeof preconditions['resourceVersion'] === 'string' ? { resourceVersion: preconditions['resourceVersion'] } : {}),
        },
        dryRun: dryRun === 'All',
      };
      if (name === undefined) {
        entry.verb = 'deletecollection';
        const filter: ListFilter = {
          namespace,
          labels: parseLabelSelector(q.get('labelSelector')),
          fields: parseFieldSelector(q.get('fieldSelector'), ['metadata.name', 'metadata.namespace', ...type.extraFieldSelectors]),
        };
        const victims = this.store.list(type, filter);
        for (const v of victims) {
          const meta = metadataOf(v);
          this.store.delete(type, meta['namespace'] as string | undefined, String(meta['name']), deleteOpts);
        }
        sendJson(res, 200, { kind: type.listKind, apiVersion: groupVersionOf(type), metadata: { resourceVersion: String(this.store.currentRevision()) }, items: victims.map(listItem) });
        return;
      }
      entry.verb = 'delete';
      const deleted = this.store.delete(type, namespace, name, deleteOpts);
      sendJson(res, 200, {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Success',
        details: { name, group: type.group, kind: type.plural, uid: metadataOf(deleted)['uid'] ?? null },
      });
      return;
    }
    throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
  }

  /** List items lose apiVersion/kind; a Table row's embedded object has them, as from the real server. */
  private withIdentity(type: ResourceType, item: JsonObject): JsonObject {
    return { apiVersion: groupVersionOf(type), kind: type.kind, ...item };
  }

  /** `/openapi/v2` (protobuf when asked for it, as kubectl does, else JSON), `/openapi/v3` and `/openapi/v3/<group-version>`. */
  private serveOpenApi(req: IncomingMessage, res: ServerResponse, path: string): void {
    const opts = { fieldValidation: this.opts.serverSideFieldValidation };
    if (path === '/openapi/v2') {
      const accept = req.headers.accept ?? '';
      if (accept.includes(OPENAPI_V2_PROTOBUF) || accept.includes(OPENAPI_V2_PROTOBUF_RETURNED)) {
        const bytes = encodeOpenApiV2(openApiV2Document(opts));
        res.writeHead(200, { 'Content-Type': OPENAPI_V2_PROTOBUF_RETURNED, 'Content-Length': bytes.length });
        res.end(bytes);
        return;
      }
      sendJson(res, 200, openApiV2Document(opts));
      return;
    }
    if (path === '/openapi/v3') {
      sendJson(res, 200, openApiV3Index(opts));
      return;
    }
    const doc = openApiV3Document(path.slice('/openapi/v3/'.length), opts);
    if (!doc) throw notFoundPath();
    sendJson(res, 200, doc);
  }

  /** GET, PUT and PATCH of `<deployment>/scale`: an autoscaling/v1 Scale whose writes change only spec.replicas. */
  private async serveScale(
    req: IncomingMessage,
    res: ServerResponse,
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    manager: string,
    dryRun: boolean,
    entry: AuditEntry,
  ): Promise<void> {
    const method = req.method ?? 'GET';
    const current = this.store.get(type, namespace, name);
    if (method === 'GET') {
      entry.verb = 'get';
      sendJson(res, 200, scaleOf(current));
      return;
    }
    let requested: JsonValue;
    if (method === 'PUT') {
      entry.verb = 'update';
      requested = parseBody(await readBody(req, this.opts.maxBodyBytes), req.headers['content-type'] ?? 'application/json');
      const meta = isJsonObject(requested) && isJsonObject(requested['metadata']) ? requested['metadata'] : {};
      const rv = meta['resourceVersion'];
      if (typeof rv === 'string' && rv !== '' && rv !== metadataOf(current)['resourceVersion']) {
        throw new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${type.plural}.${type.group} "${name}": the object has been modified; please apply your changes to the latest version and try again`, {
          name,
          group: type.group,
          kind: type.plural,
        });
      }
    } else if (method === 'PATCH') {
      entry.verb = 'patch';
      const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
      entry.contentType = contentType;
      const patchType = PATCH_TYPES[contentType];
      if (!patchType) {
        throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${Object.keys(PATCH_TYPES).join(', ')}`);
      }
      const body = parseBody(await readBody(req, this.opts.maxBodyBytes), patchType === 'apply' ? 'yaml' : 'json');
      const scale = scaleOf(current);
      // A Scale has no keyed lists, so strategic merge and apply reduce to a merge of spec.replicas.
      requested = patchType === 'json' ? applyJsonPatch(scale, body) : applyMergePatch(scale, body);
    } else {
      throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    }
    entry.fieldManager = manager;
    const replicas = requestedReplicas(name, requested);
    const next = cloneJson(current);
    (next['spec'] as JsonObject)['replicas'] = replicas;
    delete metadataOf(next)['resourceVersion'];
    const written = this.store.replace(type, namespace, name, next, { manager, dryRun });
    sendJson(res, 200, scaleOf(written));
  }

  private listResponse(type: ResourceType, filter: ListFilter, q: URLSearchParams): JsonObject {
    let items = this.store.list(type, filter);
    const limit = Number(q.get('limit') ?? '0');
    const token = q.get('continue');
    if (token) {
      let after: string;
      try {
        after = Buffer.from(token, 'base64url').toString('utf8');
      } catch {
        throw badRequest('continue key is not valid');
      }
      items = items.filter((i) => `${String(metadataOf(i)['namespace'] ?? '')}/${String(metadataOf(i)['name'])}` > after);
    }
    const metadata: JsonObject = { resourceVersion: String(this.store.currentRevision()) };
    if (Number.isInteger(limit) && limit > 0 && items.length > limit) {
      items = items.slice(0, limit);
      const last = items[items.length - 1]!;
      metadata['continue'] = Buffer.from(`${String(metadataOf(last)['namespace'] ?? '')}/${String(metadataOf(last)['name'])}`).toString('base64url');
    }
    return { kind: type.listKind, apiVersion: groupVersionOf(type), metadata, items: items.map(listItem) };
  }

  private serveWatch(req: IncomingMessage, res: ServerResponse, type: ResourceType, filter: ListFilter, q: URLSearchParams): void {
    const rvParam = q.get('resourceVersion');
    if (rvParam !== null && rvParam !== '' && !/^\d+$/.test(rvParam)) throw badRequest(`invalid resource version: ${rvParam}`);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    const send = (eventType: string, object: JsonObject): void => {
      if (!res.writableEnded) res.write(`${JSON.stringify({ type: eventType, object })}\n`);
    };
    const translate = (event: StoreEvent): void => {
      if (event.resource !== type) return;
      const now = this.store.matches(type, event.object, filter);
      const before = event.previous ? this.store.matches(type, event.previous, filter) : false;
      if (event.type === 'ADDED' && now) send('ADDED', event.object);
      else if (event.type === 'DELETED' && now) send('DELETED', event.object);
      else if (event.type === 'MODIFIED') {
        if (now && before) send('MODIFIED', event.object);
        else if (now) send('ADDED', event.object);
        else if (before) send('DELETED', event.object);
      }
    };
    const start = rvParam === null || rvParam === '' || rvParam === '0' ? undefined : Number(rvParam);
    if (start === undefined) {
      for (const obj of this.store.list(type, filter)) send('ADDED', obj);
    } else {
      const events = this.store.eventsSince(start);
      if (!events) {
        send('ERROR', new ApiError(410, 'Expired', `too old resource version: ${start} (${this.store.oldestRetainedRevision()})`).toStatus());
        res.end();
        return;
      }
      events.forEach(translate);
    }
    const unsubscribe = this.store.subscribe(translate);
    const timers: NodeJS.Timeout[] = [];
    if (q.get('allowWatchBookmarks') === 'true') {
      const bookmark = setInterval(() => {
        send('BOOKMARK', { kind: type.kind, apiVersion: groupVersionOf(type), metadata: { resourceVersion: String(this.store.currentRevision()) } });
      }, this.opts.bookmarkIntervalMs);
      bookmark.unref();
      timers.push(bookmark);
    }
    const timeoutSeconds = Number(q.get('timeoutSeconds') ?? '0');
    if (Number.isFinite(timeoutSeconds) && timeoutSeconds > 0) {
      const timeout = setTimeout(() => res.end(), timeoutSeconds * 1000);
      timeout.unref();
      timers.push(timeout);
    }
    const stop = (): void => {
      unsubscribe();
      timers.forEach((t) => clearTimeout(t));
      this.watches.delete(res);
    };
    this.watches.set(res, stop);
    res.on('close', stop);
    req.on('close', stop);
  }
}

/** The real server names an Update's manager after the client's user agent when none is given. */
function defaultManager(req: IncomingMessage): string {
  const agent = req.headers['user-agent'];
  return agent ? agent.split('/')[0]! : 'unknown';
}
