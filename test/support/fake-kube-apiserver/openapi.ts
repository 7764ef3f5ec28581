import { createHash } from 'node:crypto';
import { type JsonObject, type JsonValue } from './json.js';
import { RESOURCE_TYPES, type ResourceType } from './resources.js';
import { DEFINITIONS, reachableSchemas } from './schemas.js';

/**
 * `/openapi/v2` and `/openapi/v3` as the real server publishes them, for the
 * resources the fake serves.
 *
 * kubectl reads them for two things. Before sending an object it asks the v3
 * document of the object's group-version whether the PATCH operation of that
 * kind takes the `fieldValidation` query parameter; if it does, kubectl sends
 * `fieldValidation=Strict` and leaves unknown fields to the server (which the
 * fake enforces from the same schemas), otherwise it validates against the v2
 * document itself. And `kubectl apply` on an existing object computes its
 * strategic merge patch from the v3 schemas' patch merge keys.
 */

const META = 'io.k8s.apimachinery.pkg.apis.meta.v1';
const VERSION = 'v1.33.0';

type Dialect = 'v2' | 'v3';

/** Rewrites the bare schema names of `DEFINITIONS` into the document's reference form. */
function withRefs(value: JsonValue, dialect: Dialect): JsonValue {
  if (Array.isArray(value)) return value.map((v) => withRefs(v, dialect));
  if (value === null || typeof value !== 'object') return value;
  const out: JsonObject = {};
  for (const [key, child] of Object.entries(value)) {
    if (key === '$ref' && typeof child === 'string') {
      out[key] = dialect === 'v2' ? `#/definitions/${child}` : `#/components/schemas/${child}`;
    } else if (dialect === 'v2' && key === 'x-kubernetes-int-or-string') {
      // v2 says int-or-string through `format` alone.
      continue;
    } else {
      out[key] = withRefs(child, dialect);
    }
  }
  return out;
}

interface Parameter {
  name: string;
  in: 'query' | 'path';
  description: string;
  required?: boolean;
  type: 'string' | 'boolean' | 'integer';
}

const P = {
  name: (kind: string): Parameter => ({ name: 'name', in: 'path', required: true, type: 'string', description: `name of the ${kind}` }),
  namespace: { name: 'namespace', in: 'path', required: true, type: 'string', description: 'object name and auth scope, such as for teams and projects' } as Parameter,
  pretty: { name: 'pretty', in: 'query', type: 'string', description: "If 'true', then the output is pretty printed." } as Parameter,
  dryRun: { name: 'dryRun', in: 'query', type: 'string', description: 'When present, indicates that modifications should not be persisted. Valid values are: - All' } as Parameter,
  fieldManager: { name: 'fieldManager', in: 'query', type: 'string', description: 'fieldManager is a name associated with the actor or entity that is making these changes.' } as Parameter,
  fieldValidation: {
    name: 'fieldValidation',
    in: 'query',
    type: 'string',
    description:
      'fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn (the default) - Strict',
  } as Parameter,
  force: { name: 'force', in: 'query', type: 'boolean', description: 'Force is going to "force" Apply requests. It must be unset for non-apply patch requests.' } as Parameter,
  labelSelector: { name: 'labelSelector', in: 'query', type: 'string', description: 'A selector to restrict the list of returned objects by their labels.' } as Parameter,
  fieldSelector: { name: 'fieldSelector', in: 'query', type: 'string', description: 'A selector to restrict the list of returned objects by their fields.' } as Parameter,
  limit: { name: 'limit', in: 'query', type: 'integer', description: 'limit is a maximum number of responses to return for a list call.' } as Parameter,
  continue: { name: 'continue', in: 'query', type: 'string', description: 'The continue option should be set when retrieving more results from the server.' } as Parameter,
  resourceVersion: { name: 'resourceVersion', in: 'query', type: 'string', description: 'resourceVersion sets a constraint on what resource versions a request may be served from.' } as Parameter,
  timeoutSeconds: { name: 'timeoutSeconds', in: 'query', type: 'integer', description: 'Timeout for the list/watch call.' } as Parameter,
  watch: { name: 'watch', in: 'query', type: 'boolean', description: 'Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.' } as Parameter,
  allowWatchBookmarks: { name: 'allowWatchBookmarks', in: 'query', type: 'boolean', description: 'allowWatchBookmarks requests watch events with type "BOOKMARK".' } as Parameter,
  propagationPolicy: { name: 'propagationPolicy', in: 'query', type: 'string', description: "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'." } as Parameter,
  gracePeriodSeconds: { name: 'gracePeriodSeconds', in: 'query', type: 'integer', description: 'The duration in seconds before the object should be deleted.' } as Parameter,
};

const LIST_PARAMS = [P.allowWatchBookmarks, P.continue, P.fieldSelector, P.labelSelector, P.limit, P.resourceVersion, P.timeoutSeconds, P.watch];
const PATCH_TYPES = ['application/apply-patch+yaml', 'application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json'];

interface Operation {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  operationId: string;
  description: string;
  action: string;
  params: Parameter[];
  /** Schema name of the request body, if any (patch bodies are `meta.v1.Patch`). */
  body?: string;
  /** Schema name of the 200 response. */
  response: string;
  created?: boolean;
  kind: { group: string; version: string; kind: string };
}

/** `AppsV1`, `CoreV1`, `AutoscalingV2` as operation ids spell a group-version. */
function opGroup(type: ResourceType): string {
  const cap = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
  return type.group === '' ? `Core${cap(type.version)}` : `${cap(type.group)}${cap(type.version)}`;
}

function basePath(type: ResourceType): string {
  return type.group === '' ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
}

/** What the documents advertise; a server before Kubernetes 1.25 had no server-side field validation. */
export interface OpenApiOptions {
  fieldValidation: boolean;
}

/** The paths and operations the real server publishes for one resource, as far as the fake serves them. */
function pathsFor(type: ResourceType, opts: OpenApiOptions): Record<string, { common: Parameter[]; ops: Operation[] }> {
  const g = opGroup(type);
  const ns = type.namespaced ? 'Namespaced' : '';
  const kind = { group: type.group, version: type.version, kind: type.kind };
  const list = `${type.schema}List`;
  const collection = type.namespaced ? `${basePath(type)}/namespaces/{namespace}/${type.plural}` : `${basePath(type)}/${type.plural}`;
  const item = `${collection}/{name}`;
  const scope = type.namespaced ? [P.namespace] : [];
  const writes = type.writable;
  const paths: Record<string, { common: Parameter[]; ops: Operation[] }> = {};
  const validation = opts.fieldValidation ? [P.fieldValidation] : [];
  paths[collection] = {
    common: [...scope, P.pretty],
    ops: [
      { method: 'get', operationId: `list${g}${ns}${type.kind}`, description: `list or watch objects of kind ${type.kind}`, action: 'list', params: LIST_PARAMS, response: list, kind },
      ...(writes
        ? [
            {
              method: 'post' as const,
              operationId: `create${g}${ns}${type.kind}`,
              description: `create a ${type.kind}`,
              action: 'post',
              params: [P.dryRun, P.fieldManager, ...validation],
              body: type.schema,
              response: type.schema,
              created: true,
              kind,
            },
          ]
        : []),
    ],
  };
  const itemOps: Operation[] = [
    { method: 'get', operationId: `read${g}${ns}${type.kind}`, description: `read the specified ${type.kind}`, action: 'get', params: [], response: type.schema, kind },
  ];
  if (writes) {
    itemOps.push(
      { method: 'put', operationId: `replace${g}${ns}${type.kind}`, description: `replace the specified ${type.kind}`, action: 'put', params: [P.dryRun, P.fieldManager, ...validation], body: type.schema, response: type.schema, created: true, kind },
      { method: 'patch', operationId: `patch${g}${ns}${type.kind}`, description: `partially update the specified ${type.kind}`, action: 'patch', params: [P.dryRun, P.fieldManager, ...validation, P.force], body: `${META}.Patch`, response: type.schema, created: true, kind },
      { method: 'delete', operationId: `delete${g}${ns}${type.kind}`, description: `delete a ${type.kind}`, action: 'delete', params: [P.dryRun, P.gracePeriodSeconds, P.propagationPolicy], body: `${META}.DeleteOptions`, response: `${META}.Status`, kind },
    );
  }
  paths[item] = { common: [P.name(type.kind), ...scope, P.pretty], ops: itemOps };
  if (type.hasStatus) {
    const statusOps: Operation[] = [
      { method: 'get', operationId: `read${g}${ns}${type.kind}Status`, description: `read status of the specified ${type.kind}`, action: 'get', params: [], response: type.schema, kind },
    ];
    if (writes) {
      statusOps.push(
        { method: 'put', operationId: `replace${g}${ns}${type.kind}Status`, description: `replace status of the specified ${type.kind}`, action: 'put', params: [P.dryRun, P.fieldManager, ...validation], body: type.schema, response: type.schema, created: true, kind },
        { method: 'patch', operationId: `patch${g}${ns}${type.kind}Status`, description: `partially update status of the specified ${type.kind}`, action: 'patch', params: [P.dryRun, P.fieldManager, ...validation, P.force], body: `${META}.Patch`, response: type.schema, created: true, kind },
      );
    }
    paths[`${item}/status`] = { common: [P.name(type.kind), ...scope, P.pretty], ops: statusOps };
  }
  if (type.hasScale) {
    const scale = 'io.k8s.api.autoscaling.v1.Scale';
    const scaleKind = { group: 'autoscaling', version: 'v1', kind: 'Scale' };
    paths[`${item}/scale`] = {
      common: [P.name('Scale'), ...scope, P.pretty],
      ops: [
        { method: 'get', operationId: `read${g}${ns}${type.kind}Scale`, description: `read scale of the specified ${type.kind}`, action: 'get', params: [], response: scale, kind: scaleKind },
        { method: 'put', operationId: `replace${g}${ns}${type.kind}Scale`, description: `replace scale of the specified ${type.kind}`, action: 'put', params: [P.dryRun, P.fieldManager, ...validation], body: scale, response: scale, created: true, kind: scaleKind },
        { method: 'patch', operationId: `patch${g}${ns}${type.kind}Scale`, description: `partially update scale of the specified ${type.kind}`, action: 'patch', params: [P.dryRun, P.fieldManager, ...validation, P.force], body: `${META}.Patch`, response: scale, created: true, kind: scaleKind },
      ],
    };
  }
  if (type.namespaced) {
    paths[`${basePath(type)}/${type.plural}`] = {
      common: [P.pretty],
      ops: [{ method: 'get', operationId: `list${g}${type.kind}ForAllNamespaces`, description: `list or watch objects of kind ${type.kind}`, action: 'list', params: LIST_PARAMS, response: list, kind }],
    };
  }
  return paths;
}

function v3Parameter(p: Parameter): JsonObject {
  return {
    name: p.name,
    in: p.in,
    description: p.description,
    ...(p.required ? { required: true } : {}),
    schema: { type: p.type, uniqueItems: true },
  };
}

function v2Parameter(p: Parameter): JsonObject {
  return { name: p.name, in: p.in, description: p.description, ...(p.required ? { required: true } : {}), type: p.type, uniqueItems: true };
}

function v3Operation(op: Operation, tag: string): JsonObject {
  const content = (schema: string, types: string[]): JsonObject =>
    Object.fromEntries(types.map((t) => [t, { schema: { $ref: `#/components/schemas/${schema}` } }]));
  const responseTypes = ['application/json', 'application/yaml', 'application/vnd.kubernetes.protobuf'];
  const responses: JsonObject = { '200': { description: 'OK', content: content(op.response, responseTypes) } };
  if (op.created) responses['201'] = { description: 'Created', content: content(op.response, responseTypes) };
  responses['401'] = { description: 'Unauthorized' };
  return {
    tags: [tag],
    description: op.description,
    operationId: op.operationId,
    ...(op.params.length > 0 ? { parameters: op.params.map(v3Parameter) } : {}),
    ...(op.body
      ? { requestBody: { content: content(op.body, op.method === 'patch' ? PATCH_TYPES : ['*/*']), ...(op.method === 'delete' ? {} : { required: true }) } }
      : {}),
    responses,
    'x-kubernetes-action': op.action,
    'x-kubernetes-group-version-kind': op.kind,
  };
}

function v2Operation(op: Operation, tag: string): JsonObject {
  const params = op.params.map(v2Parameter);
  if (op.body) params.unshift({ name: 'body', in: 'body', ...(op.method === 'delete' ? {} : { required: true }), schema: { $ref: `#/definitions/${op.body}` } });
  const responses: JsonObject = { '200': { description: 'OK', schema: { $ref: `#/definitions/${op.response}` } } };
  if (op.created) responses['201'] = { description: 'Created', schema: { $ref: `#/definitions/${op.response}` } };
  responses['401'] = { description: 'Unauthorized' };
  return {
    description: op.description,
    consumes: op.method === 'patch' ? PATCH_TYPES : ['*/*'],
    produces: ['application/json', 'application/yaml', 'application/vnd.kubernetes.protobuf'],
    schemes: ['https'],
    tags: [tag],
    operationId: op.operationId,
    ...(params.length > 0 ? { parameters: params } : {}),
    responses,
    'x-kubernetes-action': op.action,
    'x-kubernetes-group-version-kind': op.kind,
  };
}

/** `core_v1`, `apps_v1`: the tag the real documents group operations under. */
function tagFor(type: ResourceType): string {
  return `${type.group === '' ? 'core' : type.group.replace(/\./g, '_')}_${type.version}`;
}

function schemaRootsFor(types: ResourceType[]): string[] {
  const roots = new Set<string>([`${META}.Patch`, `${META}.DeleteOptions`, `${META}.Status`]);
  for (const t of types) {
    roots.add(t.schema);
    roots.add(`${t.schema}List`);
    if (t.hasScale) roots.add('io.k8s.api.autoscaling.v1.Scale');
  }
  return [...roots].filter((r) => DEFINITIONS[r] !== undefined);
}

/** The group-versions the fake serves, as `/openapi/v3` names them (`api/v1`, `apis/apps/v1`). */
export function openApiV3GroupVersions(): string[] {
  return [...new Set(RESOURCE_TYPES.map((t) => (t.group === '' ? `api/${t.version}` : `apis/${t.group}/${t.version}`)))];
}

/** The OpenAPI 3.0 document of one group-version (`api/v1`, `apis/apps/v1`), or undefined for one not served. */
export function openApiV3Document(groupVersion: string, opts: OpenApiOptions): JsonObject | undefined {
  const types = RESOURCE_TYPES.filter((t) => (t.group === '' ? `api/${t.version}` : `apis/${t.group}/${t.version}`) === groupVersion);
  if (types.length === 0) return undefined;
  const paths: JsonObject = {};
  for (const type of types) {
    for (const [path, { common, ops }] of Object.entries(pathsFor(type, opts))) {
      const item: JsonObject = {};
      for (const op of ops) item[op.method] = v3Operation(op, tagFor(type));
      item['parameters'] = common.map(v3Parameter);
      paths[path] = item;
    }
  }
  const schemas: JsonObject = {};
  for (const name of reachableSchemas(schemaRootsFor(types))) schemas[name] = withRefs(DEFINITIONS[name]!, 'v3');
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: VERSION },
    paths,
    components: { schemas, securitySchemes: { BearerToken: { type: 'apiKey', description: 'Bearer Token authentication', name: 'authorization', in: 'header' } } },
  };
}

/** A stable hash of a document, as the real server puts in `serverRelativeURL` so clients can cache by it. */
export function documentHash(doc: JsonObject): string {
  return createHash('sha512').update(JSON.stringify(doc)).digest('hex').toUpperCase().slice(0, 128);
}

/** `/openapi/v3`: where each group-version's document is, with its hash. */
export function openApiV3Index(opts: OpenApiOptions): JsonObject {
  const paths: JsonObject = {};
  for (const gv of openApiV3GroupVersions()) {
    paths[gv] = { serverRelativeURL: `/openapi/v3/${gv}?hash=${documentHash(openApiV3Document(gv, opts)!)}` };
  }
  return { paths };
}

/** The Swagger 2.0 document of everything the fake serves (`/openapi/v2`). */
export function openApiV2Document(opts: OpenApiOptions): JsonObject {
  const paths: JsonObject = {};
  for (const type of RESOURCE_TYPES) {
    for (const [path, { common, ops }] of Object.entries(pathsFor(type, opts))) {
      const item: JsonObject = {};
      for (const op of ops) item[op.method] = v2Operation(op, tagFor(type));
      item['parameters'] = common.map(v2Parameter);
      paths[path] = item;
    }
  }
  const definitions: JsonObject = {};
  for (const name of reachableSchemas(schemaRootsFor([...RESOURCE_TYPES]))) definitions[name] = withRefs(DEFINITIONS[name]!, 'v2');
  return {
    swagger: '2.0',
    info: { title: 'Kubernetes', version: VERSION },
    paths,
    definitions,
    securityDefinitions: { BearerToken: { type: 'apiKey', description: 'Bearer Token authentication', name: 'authorization', in: 'header' } },
    security: [{ BearerToken: [] }],
  };
}
