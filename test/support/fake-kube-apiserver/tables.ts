import { isJsonObject, metadataOf, stringMap, type JsonObject, type JsonValue } from './json.js';
import { type ResourceType } from './resources.js';
import { badRequest } from './status.js';

/**
 * Server-side printing: `kubectl get` asks for
 * `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the server's
 * columns and cells as they come. Columns and cell formats follow the real
 * server's printers (pkg/printers/internalversion/printers.go); like the
 * real server, every row carries the wide (priority 1) cells and kubectl
 * drops them unless `-o wide`.
 */

interface Column {
  name: string;
  type: 'string' | 'integer' | 'boolean';
  format?: 'name';
  priority?: number;
  description: string;
}

const NAME: Column = { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.' };
const AGE: Column = { name: 'Age', type: 'string', description: 'CreationTimestamp is a timestamp representing the server time when this object was created.' };
const CONTAINERS: Column = { name: 'Containers', type: 'string', priority: 1, description: 'Names of each container in the template.' };
const IMAGES: Column = { name: 'Images', type: 'string', priority: 1, description: 'Images referenced by each container in the template.' };
const SELECTOR: Column = { name: 'Selector', type: 'string', priority: 1, description: 'Label selector for pods.' };

type Cell = string | number | boolean;
type Printer = { columns: Column[]; row: (obj: JsonObject, now: Date) => Cell[] };

const o = (v: JsonValue | undefined): JsonObject => (isJsonObject(v) ? v : {});
const arr = (v: JsonValue | undefined): JsonValue[] => (Array.isArray(v) ? v : []);
const num = (v: JsonValue | undefined): number => (typeof v === 'number' ? v : 0);

/** k8s.io/apimachinery/pkg/util/duration.HumanDuration: `5s`, `3m20s`, `4h`, `2d3h`, `3y`. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(seconds / 3600);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) return hours % 24 === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${hours % 24}h`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const days = Math.floor(hours / 24) % 365;
    return days === 0 ? `${Math.floor(hours / 24 / 365)}y` : `${Math.floor(hours / 24 / 365)}y${days}d`;
  }
  return `${Math.floor(hours / 24 / 365)}y`;
}

function age(obj: JsonObject, now: Date): string {
  const ts = metadataOf(obj)['creationTimestamp'];
  if (typeof ts !== 'string') return '<unknown>';
  return humanDuration(now.getTime() - Date.parse(ts));
}

/** labels.Selector.String() of a metav1.LabelSelector: requirements sorted by key. */
export function selectorString(selector: JsonValue | undefined): string {
  if (!isJsonObject(selector)) return '<none>';
  const parts: { key: string; text: string }[] = [];
  for (const [k, v] of Object.entries(stringMap(selector['matchLabels']))) parts.push({ key: k, text: `${k}=${v}` });
  for (const e of arr(selector['matchExpressions'])) {
    const r = o(e);
    const key = String(r['key'] ?? '');
    const values = arr(r['values']).map(String).sort().join(',');
    const text =
      r['operator'] === 'In' ? `${key} in (${values})` : r['operator'] === 'NotIn' ? `${key} notin (${values})` : r['operator'] === 'Exists' ? key : `!${key}`;
    parts.push({ key, text });
  }
  if (parts.length === 0) return '<none>';
  return parts
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((p) => p.text)
    .join(',');
}

/** labels.FormatLabels: `a=b,c=d` sorted by key, `<none>` when empty. */
function formatLabels(map: Record<string, string>): string {
  const keys = Object.keys(map).sort();
  return keys.length === 0 ? '<none>' : keys.map((k) => `${k}=${map[k]}`).join(',');
}

function containerCells(podSpec: JsonObject): [string, string] {
  const containers = arr(podSpec['containers']).map(o);
  return [containers.map((c) => String(c['name'] ?? '')).join(','), containers.map((c) => String(c['image'] ?? '')).join(',')];
}

function podStatus(pod: JsonObject): { ready: string; status: string; restarts: string } {
  const spec = o(pod['spec']);
  const status = o(pod['status']);
  const total = arr(spec['containers']).length;
  let reason = String(status['reason'] ?? '') || String(status['phase'] ?? '') || 'Unknown';
  let ready = 0;
  let restarts = 0;
  for (const cs of arr(status['containerStatuses']).map(o)) {
    restarts += num(cs['restartCount']);
    const state = o(cs['state']);
    const waiting = o(state['waiting']);
    const terminated = o(state['terminated']);
    if (typeof waiting['reason'] === 'string' && waiting['reason'] !== '') reason = waiting['reason'];
    else if (typeof terminated['reason'] === 'string' && terminated['reason'] !== '') reason = terminated['reason'];
    else if (isJsonObject(state['terminated'])) reason = typeof terminated['signal'] === 'number' && terminated['signal'] !== 0 ? `Signal:${terminated['signal']}` : `ExitCode:${num(terminated['exitCode'])}`;
    else if (cs['ready'] === true && isJsonObject(state['running'])) ready++;
  }
  if (metadataOf(pod)['deletionTimestamp'] !== undefined) reason = status['reason'] === 'NodeLost' ? 'Unknown' : 'Terminating';
  return { ready: `${ready}/${total}`, status: reason, restarts: String(restarts) };
}

function jobStatus(job: JsonObject): string {
  const conditions = arr(o(job['status'])['conditions']).map(o);
  const has = (t: string): boolean => conditions.some((c) => c['type'] === t && c['status'] === 'True');
  if (has('Complete')) return 'Complete';
  if (has('Failed')) return 'Failed';
  if (metadataOf(job)['deletionTimestamp'] !== undefined) return 'Terminating';
  if (has('FailureTarget')) return 'FailureTarget';
  if (has('SuccessCriteriaMet')) return 'SuccessCriteriaMet';
  if (has('Suspended')) return 'Suspended';
  return 'Running';
}

function hpaTargets(hpa: JsonObject): string {
  const specs = arr(o(hpa['spec'])['metrics']).map(o);
  const statuses = arr(o(hpa['status'])['currentMetrics']).map(o);
  if (specs.length === 0) return '<none>';
  const list = specs.map((m, i) => {
    const current = o(statuses[i]);
    switch (m['type']) {
      case 'Resource': {
        const r = o(m['resource']);
        const target = o(r['target']);
        if (target['averageValue'] !== undefined) {
          const cur = o(o(current['resource'])['current'])['averageValue'];
          return `${String(r['name'])}: ${cur !== undefined ? String(cur) : '<unknown>'}/${String(target['averageValue'])}`;
        }
        const cur = o(o(current['resource'])['current'])['averageUtilization'];
        const want = target['averageUtilization'];
        return `${String(r['name'])}: ${cur !== undefined ? `${String(cur)}%` : '<unknown>'}/${want !== undefined ? `${String(want)}%` : '<auto>'}`;
      }
      case 'Pods': {
        const cur = o(o(current['pods'])['current'])['averageValue'];
        return `${cur !== undefined ? String(cur) : '<unknown>'}/${String(o(o(m['pods'])['target'])['averageValue'] ?? '')}`;
      }
      case 'Object':
      case 'External': {
        const key = m['type'] === 'Object' ? 'object' : 'external';
        const target = o(o(m[key])['target']);
        const cur = o(o(current[key])['current']);
        const value = target['value'] ?? target['averageValue'];
        const currentValue = cur['value'] ?? cur['averageValue'];
        return `${currentValue !== undefined ? String(currentValue) : '<unknown>'}/${String(value ?? '')}${target['averageValue'] !== undefined ? ' (avg)' : ''}`;
      }
      default:
        return '<unknown type>';
    }
  });
  return list.length > 2 ? `${list.slice(0, 2).join(', ')} + ${list.length - 2} more...` : list.join(', ');
}

function servicePorts(spec: JsonObject): string {
  const ports = arr(spec['ports']).map(o);
  if (ports.length === 0) return '<none>';
  return ports
    .map((p) => (num(p['nodePort']) > 0 ? `${num(p['port'])}:${num(p['nodePort'])}/${String(p['protocol'] ?? 'TCP')}` : `${num(p['port'])}/${String(p['protocol'] ?? 'TCP')}`))
    .join(',');
}

function serviceExternalIp(spec: JsonObject, status: JsonObject): string {
  const external = arr(spec['externalIPs']).map(String);
  switch (spec['type']) {
    case 'ClusterIP':
    case 'NodePort':
      return external.length > 0 ? external.join(',') : '<none>';
    case 'LoadBalancer': {
      const ingress = arr(o(status['loadBalancer'])['ingress']).map(o).map((i) => String(i['ip'] ?? i['hostname'] ?? ''));
      const all = [...ingress, ...external].filter((s) => s !== '');
      return all.length > 0 ? all.join(',') : '<pending>';
    }
    case 'ExternalName':
      return String(spec['externalName'] ?? '');
    default:
      return '<unknown>';
  }
}

const PRINTERS: Record<string, Printer> = {
  Namespace: {
    columns: [NAME, { name: 'Status', type: 'string', description: 'The status of the namespace' }, AGE],
    row: (ns, now) => [String(metadataOf(ns)['name']), String(o(ns['status'])['phase'] ?? ''), age(ns, now)],
  },
  ConfigMap: {
    columns: [NAME, { name: 'Data', type: 'string', description: 'Data contains the configuration data.' }, AGE],
    row: (cm, now) => [String(metadataOf(cm)['name']), Object.keys(o(cm['data'])).length + Object.keys(o(cm['binaryData'])).length, age(cm, now)],
  },
  Pod: {
    columns: [
      NAME,
      { name: 'Ready', type: 'string', description: 'The aggregate readiness state of this pod for accepting traffic.' },
      { name: 'Status', type: 'string', description: 'The aggregate status of the containers in this pod.' },
      { name: 'Restarts', type: 'string', description: 'The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.' },
      AGE,
      { name: 'IP', type: 'string', priority: 1, description: 'podIP address allocated to the pod.' },
      { name: 'Node', type: 'string', priority: 1, description: 'NodeName indicates in which node this pod is scheduled.' },
      { name: 'Nominated Node', type: 'string', priority: 1, description: 'nominatedNodeName is set only when this pod preempts other pods on the node.' },
      { name: 'Readiness Gates', type: 'string', priority: 1, description: 'If specified, all readiness gates will be evaluated for pod readiness.' },
    ],
    row: (pod, now) => {
      const { ready, status, restarts } = podStatus(pod);
      const spec = o(pod['spec']);
      const st = o(pod['status']);
      const gates = arr(spec['readinessGates']).map(o);
      const gateCell = gates.length === 0 ? '<none>' : `${gates.filter((g) => arr(st['conditions']).map(o).some((c) => c['type'] === g['conditionType'] && c['status'] === 'True')).length}/${gates.length}`;
      return [
        String(metadataOf(pod)['name']),
        ready,
        status,
        restarts,
        age(pod, now),
        String(st['podIP'] ?? '') || '<none>',
        String(spec['nodeName'] ?? '') || '<none>',
        String(st['nominatedNodeName'] ?? '') || '<none>',
        gateCell,
      ];
    },
  },
  Service: {
    columns: [
      NAME,
      { name: 'Type', type: 'string', description: 'type determines how the Service is exposed.' },
      { name: 'Cluster-IP', type: 'string', description: 'clusterIP is the IP address of the service.' },
      { name: 'External-IP', type: 'string', description: 'externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.' },
      { name: 'Port(s)', type: 'string', description: 'The list of ports that are exposed by this service.' },
      AGE,
      { ...SELECTOR, description: 'Route service traffic to pods with label keys and values matching this selector.' },
    ],
    row: (svc, now) => {
      const spec = o(svc['spec']);
      const ips = arr(spec['clusterIPs']).map(String);
      return [
        String(metadataOf(svc)['name']),
        String(spec['type'] ?? ''),
        ips[0] ?? '<none>',
        serviceExternalIp(spec, o(svc['status'])),
        servicePorts(spec),
        age(svc, now),
        formatLabels(stringMap(spec['selector'])),
      ];
    },
  },
  Deployment: {
    columns: [
      NAME,
      { name: 'Ready', type: 'string', description: 'Number of the pod with ready state' },
      { name: 'Up-to-date', type: 'string', description: 'Total number of non-terminated pods targeted by this deployment that have the desired template spec.' },
      { name: 'Available', type: 'string', description: 'Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.' },
      AGE,
      CONTAINERS,
      IMAGES,
      SELECTOR,
    ],
    row: (d, now) => {
      const spec = o(d['spec']);
      const status = o(d['status']);
      const [containers, images] = containerCells(o(o(spec['template'])['spec']));
      return [
        String(metadataOf(d)['name']),
        `${num(status['readyReplicas'])}/${num(spec['replicas'])}`,
        num(status['updatedReplicas']),
        num(status['availableReplicas']),
        age(d, now),
        containers,
        images,
        selectorString(spec['selector']),
      ];
    },
  },
  HorizontalPodAutoscaler: {
    columns: [
      NAME,
      { name: 'Reference', type: 'string', description: 'scaleTargetRef points to the target resource to scale.' },
      { name: 'Targets', type: 'string', description: 'metrics contains the specifications for which to use to calculate the desired replica count.' },
      { name: 'MinPods', type: 'string', description: 'minReplicas is the lower limit for the number of replicas.' },
      { name: 'MaxPods', type: 'string', description: 'maxReplicas is the upper limit for the number of replicas.' },
      { name: 'Replicas', type: 'string', description: 'currentReplicas is current number of replicas of pods managed by this autoscaler.' },
      AGE,
    ],
    row: (hpa, now) => {
      const spec = o(hpa['spec']);
      const ref = o(spec['scaleTargetRef']);
      return [
        String(metadataOf(hpa)['name']),
        `${String(ref['kind'] ?? '')}/${String(ref['name'] ?? '')}`,
        hpaTargets(hpa),
        spec['minReplicas'] !== undefined ? String(spec['minReplicas']) : '<unset>',
        num(spec['maxReplicas']),
        num(o(hpa['status'])['currentReplicas']),
        age(hpa, now),
      ];
    },
  },
  Job: {
    columns: [
      NAME,
      { name: 'Status', type: 'string', description: 'Status of the job.' },
      { name: 'Completions', type: 'string', description: 'The number of pods which reached phase Succeeded.' },
      { name: 'Duration', type: 'string', description: 'Time required to complete the job.' },
      AGE,
      CONTAINERS,
      IMAGES,
      SELECTOR,
    ],
    row: (job, now) => {
      const spec = o(job['spec']);
      const status = o(job['status']);
      const succeeded = num(status['succeeded']);
      const completions =
        spec['completions'] !== undefined && spec['completions'] !== null
          ? `${succeeded}/${num(spec['completions'])}`
          : num(spec['parallelism']) > 1
            ? `${succeeded}/1 of ${num(spec['parallelism'])}`
            : `${succeeded}/1`;
      const start = typeof status['startTime'] === 'string' ? Date.parse(status['startTime']) : undefined;
      const end = typeof status['completionTime'] === 'string' ? Date.parse(status['completionTime']) : now.getTime();
      const [containers, images] = containerCells(o(o(spec['template'])['spec']));
      return [
        String(metadataOf(job)['name']),
        jobStatus(job),
        completions,
        start === undefined ? '' : humanDuration(end - start),
        age(job, now),
        containers,
        images,
        selectorString(spec['selector']),
      ];
    },
  },
};

/** Whether an Accept header asks for a meta.k8s.io Table (v1 or v1beta1) before anything else it accepts. */
export function wantsTable(accept: string | undefined): 'v1' | 'v1beta1' | undefined {
  for (const clause of (accept ?? '').split(',')) {
    const params = new Map(
      clause
        .split(';')
        .slice(1)
        .map((p) => p.trim().split('=') as [string, string]),
    );
    if (params.get('as') === 'Table' && params.get('g') === 'meta.k8s.io') {
      const v = params.get('v');
      if (v === 'v1' || v === 'v1beta1') return v;
      continue;
    }
    if (clause.trim() !== '') return undefined;
  }
  return undefined;
}

/**
 * A meta.k8s.io Table of `objects`. `includeObject` is the request's
 * parameter: `Metadata` (the default) embeds PartialObjectMetadata, `Object`
 * the whole object, `None` nothing.
 */
export function toTable(type: ResourceType, objects: JsonObject[], opts: { version: 'v1' | 'v1beta1'; includeObject: string | null; resourceVersion: string; continueToken?: string }): JsonObject {
  const printer = PRINTERS[type.kind];
  const include = opts.includeObject ?? 'Metadata';
  if (!['None', 'Metadata', 'Object'].includes(include)) {
    throw badRequest(`includeObject must be one of "None", "Metadata", "Object", got "${include}"`);
  }
  const now = new Date();
  const columns = printer?.columns ?? [NAME, AGE];
  const rows = objects.map((obj) => {
    const cells = printer ? printer.row(obj, now) : [String(metadataOf(obj)['name']), age(obj, now)];
    const row: JsonObject = { cells };
    if (include === 'Object') row['object'] = obj;
    else if (include === 'Metadata') {
      row['object'] = { kind: 'PartialObjectMetadata', apiVersion: `meta.k8s.io/${opts.version}`, metadata: metadataOf(obj) };
    }
    return row;
  });
  return {
    kind: 'Table',
    apiVersion: `meta.k8s.io/${opts.version}`,
    metadata: { resourceVersion: opts.resourceVersion, ...(opts.continueToken ? { continue: opts.continueToken } : {}) },
    columnDefinitions: columns.map((c) => ({ name: c.name, type: c.type, format: c.format ?? '', description: c.description, priority: c.priority ?? 0 })),
    rows,
  };
}
