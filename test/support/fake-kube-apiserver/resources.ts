import { type JsonObject } from './json.js';

/** One REST resource the fake serves, described as discovery describes it. */
export interface ResourceType {
  group: string;
  version: string;
  kind: string;
  listKind: string;
  plural: string;
  singular: string;
  namespaced: boolean;
  shortNames: string[];
  /** Whether clients may create/update/delete it. Pods are read-only here: nothing schedules them, tests set them. */
  writable: boolean;
  /** Has a `/status` subresource: writes to the main resource leave status alone, as in the real server. */
  hasStatus: boolean;
  /** Field selectors the real server accepts for this resource beyond metadata.name/namespace. */
  extraFieldSelectors: string[];
  /** Discovery categories: `kubectl get all` lists every resource in category "all". */
  categories: string[];
  /** Has a `/scale` subresource (autoscaling/v1 Scale), as Deployments do: `kubectl scale` uses it. */
  hasScale: boolean;
  /** Name of the schema in the OpenAPI documents (`io.k8s.api.apps.v1.Deployment`). */
  schema: string;
}

export const RESOURCE_TYPES: readonly ResourceType[] = [
  {
    group: '',
    version: 'v1',
    kind: 'Namespace',
    listKind: 'NamespaceList',
    plural: 'namespaces',
    singular: 'namespace',
    namespaced: false,
    shortNames: ['ns'],
    writable: true,
    hasStatus: true,
    extraFieldSelectors: ['status.phase'],
    categories: [],
    hasScale: false,
    schema: 'io.k8s.api.core.v1.Namespace',
  },
  {
    group: '',
    version: 'v1',
    kind: 'Pod',
    listKind: 'PodList',
    plural: 'pods',
    singular: 'pod',
    namespaced: true,
    shortNames: ['po'],
    writable: false,
    hasStatus: true,
    extraFieldSelectors: ['status.phase', 'spec.nodeName'],
    categories: ['all'],
    hasScale: false,
    schema: 'io.k8s.api.core.v1.Pod',
  },
  {
    group: '',
    version: 'v1',
    kind: 'Service',
    listKind: 'ServiceList',
    plural: 'services',
    singular: 'service',
    namespaced: true,
    shortNames: ['svc'],
    writable: true,
    hasStatus: true,
    extraFieldSelectors: [],
    categories: ['all'],
    hasScale: false,
    schema: 'io.k8s.api.core.v1.Service',
  },
  {
    group: '',
    version: 'v1',
    kind: 'ConfigMap',
    listKind: 'ConfigMapList',
    plural: 'configmaps',
    singular: 'configmap',
    namespaced: true,
    shortNames: ['cm'],
    writable: true,
    hasStatus: false,
    extraFieldSelectors: [],
    categories: [],
    hasScale: false,
    schema: 'io.k8s.api.core.v1.ConfigMap',
  },
  {
    group: 'apps',
    version: 'v1',
    kind: 'Deployment',
    listKind: 'DeploymentList',
    plural: 'deployments',
    singular: 'deployment',
    namespaced: true,
    shortNames: ['deploy'],
    writable: true,
    hasStatus: true,
    extraFieldSelectors: [],
    categories: ['all'],
    hasScale: true,
    schema: 'io.k8s.api.apps.v1.Deployment',
  },
  {
    group: 'autoscaling',
    version: 'v2',
    kind: 'HorizontalPodAutoscaler',
    listKind: 'HorizontalPodAutoscalerList',
    plural: 'horizontalpodautoscalers',
    singular: 'horizontalpodautoscaler',
    namespaced: true,
    shortNames: ['hpa'],
    writable: true,
    hasStatus: true,
    extraFieldSelectors: [],
    categories: ['all'],
    hasScale: false,
    schema: 'io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler',
  },
  {
    group: 'batch',
    version: 'v1',
    kind: 'Job',
    listKind: 'JobList',
    plural: 'jobs',
    singular: 'job',
    namespaced: true,
    shortNames: [],
    writable: true,
    hasStatus: true,
    extraFieldSelectors: ['status.successful'],
    categories: ['all'],
    hasScale: false,
    schema: 'io.k8s.api.batch.v1.Job',
  },
];

export function groupVersionOf(type: ResourceType): string {
  return type.group === '' ? type.version : `${type.group}/${type.version}`;
}

export function findResourceByPath(group: string, version: string, plural: string): ResourceType | undefined {
  return RESOURCE_TYPES.find((r) => r.group === group && r.version === version && r.plural === plural);
}

/** Looks a resource up the way a person would name it: kind, plural or short name. */
export function findResourceByName(name: string): ResourceType | undefined {
  const n = name.toLowerCase();
  return RESOURCE_TYPES.find(
    (r) => r.kind.toLowerCase() === n || r.plural === n || r.singular === n || r.shortNames.includes(n),
  );
}

const ALL_VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
const READ_VERBS = ['get', 'list', 'watch'];

function resourceListFor(group: string, version: string): JsonObject {
  const resources: JsonObject[] = [];
  for (const r of RESOURCE_TYPES.filter((t) => t.group === group && t.version === version)) {
    resources.push({
      name: r.plural,
      singularName: r.singular,
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: r.writable ? ALL_VERBS : READ_VERBS,
      ...(r.shortNames.length > 0 ? { shortNames: r.shortNames } : {}),
      ...(r.categories.length > 0 ? { categories: r.categories } : {}),
      storageVersionHash: Buffer.from(`${group}/${version}/${r.kind}`).toString('base64').slice(0, 11),
    });
  }
  // Subresources come after the main resources, as in the real server: the
  // client's KubernetesObjectApi takes the first entry whose kind matches.
  for (const r of RESOURCE_TYPES.filter((t) => t.group === group && t.version === version && t.hasStatus)) {
    resources.push({
      name: `${r.plural}/status`,
      singularName: '',
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: r.writable ? ['get', 'patch', 'update'] : ['get'],
    });
  }
  // The scale subresource names its own kind (autoscaling/v1 Scale): the
  // client's scale-kind resolver reads group and version from this entry.
  for (const r of RESOURCE_TYPES.filter((t) => t.group === group && t.version === version && t.hasScale)) {
    resources.push({
      name: `${r.plural}/scale`,
      singularName: '',
      namespaced: r.namespaced,
      group: 'autoscaling',
      version: 'v1',
      kind: 'Scale',
      verbs: ['get', 'patch', 'update'],
    });
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group === '' ? version : `${group}/${version}`, resources };
}

/** Discovery documents by request path: `/api`, `/api/v1`, `/apis`, `/apis/<group>`, `/apis/<group>/<version>`. */
export function discoveryDocument(path: string, serverAddress: string): JsonObject | undefined {
  if (path === '/api') {
    return {
      kind: 'APIVersions',
      versions: ['v1'],
      serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
    };
  }
  if (path === '/api/v1') return resourceListFor('', 'v1');
  const groups = [...new Set(RESOURCE_TYPES.filter((r) => r.group !== '').map((r) => r.group))];
  const groupDoc = (group: string): JsonObject => {
    const versions = [...new Set(RESOURCE_TYPES.filter((r) => r.group === group).map((r) => r.version))].map(
      (version) => ({ groupVersion: `${group}/${version}`, version }),
    );
    return { kind: 'APIGroup', apiVersion: 'v1', name: group, versions, preferredVersion: versions[0] ?? null };
  };
  if (path === '/apis') {
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: groups.map((g) => {
        const { kind: _kind, apiVersion: _apiVersion, ...rest } = groupDoc(g);
        return rest;
      }),
    };
  }
  const match = /^\/apis\/([^/]+)(?:\/([^/]+))?$/.exec(path);
  if (!match) return undefined;
  const [, group, version] = match;
  if (!group || !groups.includes(group)) return undefined;
  if (version === undefined) return groupDoc(group);
  if (!RESOURCE_TYPES.some((r) => r.group === group && r.version === version)) return undefined;
  return resourceListFor(group, version);
}
