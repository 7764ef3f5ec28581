import { isJsonObject, jsonEqual, stringMap, type JsonObject, type JsonValue } from './json.js';
import { type ResourceType } from './resources.js';
import { validateLabelMap, validateLabelSelector } from './label-rules.js';
import { fieldInvalid, fieldRequired, type StatusCause } from './status.js';

/**
 * The slice of the real server's defaulting and validation that matters for
 * clients of these resources: defaults a client must not mistake for drift
 * (protocol, imagePullPolicy, clusterIP, replicas...), 422 for objects the
 * real server would refuse, and immutable fields.
 */

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function obj(value: JsonValue | undefined): JsonObject | undefined {
  return isJsonObject(value) ? value : undefined;
}

function ensure(parent: JsonObject, key: string): JsonObject {
  const existing = parent[key];
  if (isJsonObject(existing)) return existing;
  const created: JsonObject = {};
  parent[key] = created;
  return created;
}

function defaultContainers(podSpec: JsonObject | undefined): void {
  if (!podSpec) return;
  for (const list of ['containers', 'initContainers']) {
    const containers = podSpec[list];
    if (!Array.isArray(containers)) continue;
    for (const c of containers) {
      if (!isJsonObject(c)) continue;
      const image = typeof c['image'] === 'string' ? c['image'] : '';
      const tagged = /:[^/]+$/.test(image) && !image.endsWith(':latest');
      c['imagePullPolicy'] ??= tagged ? 'IfNotPresent' : 'Always';
      c['terminationMessagePath'] ??= '/dev/termination-log';
      c['terminationMessagePolicy'] ??= 'File';
      if (Array.isArray(c['ports'])) for (const p of c['ports']) if (isJsonObject(p)) p['protocol'] ??= 'TCP';
    }
  }
  podSpec['restartPolicy'] ??= 'Always';
  podSpec['dnsPolicy'] ??= 'ClusterFirst';
  podSpec['schedulerName'] ??= 'default-scheduler';
  podSpec['terminationGracePeriodSeconds'] ??= 30;
}

export interface DefaultingContext {
  uid: string;
  /** Allocates a cluster IP for a new Service. */
  allocateClusterIp(): string;
  /** A free port of the node-port range (30000-32767), for NodePort and LoadBalancer Services. */
  allocateNodePort?(): number;
}

export function applyDefaults(type: ResourceType, o: JsonObject, old: JsonObject | undefined, ctx: DefaultingContext): void {
  const spec = obj(o['spec']);
  const meta = ensure(o, 'metadata');
  switch (type.kind) {
    case 'Namespace': {
      const labels = ensure(meta, 'labels');
      labels['kubernetes.io/metadata.name'] = String(meta['name']);
      ensure(o, 'spec')['finalizers'] ??= ['kubernetes'];
      ensure(o, 'status')['phase'] ??= 'Active';
      break;
    }
    case 'Deployment': {
      if (!spec) break;
      spec['replicas'] ??= 1;
      spec['revisionHistoryLimit'] ??= 10;
      spec['progressDeadlineSeconds'] ??= 600;
      spec['strategy'] ??= { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } };
      defaultContainers(obj(obj(spec['template'])?.['spec']));
      break;
    }
    case 'Service': {
      if (!spec) break;
      spec['type'] ??= 'ClusterIP';
      spec['sessionAffinity'] ??= 'None';
      const oldIp = obj(old?.['spec'])?.['clusterIP'];
      spec['clusterIP'] ??= typeof oldIp === 'string' ? oldIp : ctx.allocateClusterIp();
      spec['clusterIPs'] ??= [spec['clusterIP']];
      if (Array.isArray(spec['ports'])) {
        for (const p of spec['ports']) {
          if (!isJsonObject(p)) continue;
          p['protocol'] ??= 'TCP';
          p['targetPort'] ??= p['port'] ?? null;
          if ((spec['type'] === 'NodePort' || spec['type'] === 'LoadBalancer') && ctx.allocateNodePort) {
            // As the real API server: a node port once, kept across updates of the same port.
            const oldPorts = obj(old?.['spec'])?.['ports'];
            const kept = Array.isArray(oldPorts) ? oldPorts.find((q) => isJsonObject(q) && q['name'] === p['name'])?.['nodePort' as never] : undefined;
            p['nodePort'] ??= typeof kept === 'number' ? kept : ctx.allocateNodePort();
          }
        }
      }
      break;
    }
    case 'Job': {
      if (!spec) break;
      spec['backoffLimit'] ??= 6;
      spec['completions'] ??= 1;
      spec['parallelism'] ??= 1;
      spec['completionMode'] ??= 'NonIndexed';
      spec['suspend'] ??= false;
      // The server generates the selector and stamps the template with it.
      const uid = String(old ? obj(old['metadata'])?.['uid'] : ctx.uid);
      spec['selector'] ??= { matchLabels: { 'batch.kubernetes.io/controller-uid': uid } };
      const template = ensure(spec, 'template');
      const labels = ensure(ensure(template, 'metadata'), 'labels');
      labels['batch.kubernetes.io/controller-uid'] ??= uid;
      labels['batch.kubernetes.io/job-name'] ??= String(meta['name']);
      labels['controller-uid'] ??= uid;
      labels['job-name'] ??= String(meta['name']);
      defaultContainers(obj(template['spec']));
      break;
    }
    case 'Pod':
      defaultContainers(spec);
      break;
    default:
      break;
  }
}

function validateContainers(field: string, podSpec: JsonObject | undefined, causes: StatusCause[]): void {
  const containers = podSpec?.['containers'];
  if (!Array.isArray(containers) || containers.length === 0) {
    causes.push(fieldRequired(`${field}.containers`));
    return;
  }
  containers.forEach((c, i) => {
    if (!isJsonObject(c) || typeof c['name'] !== 'string' || !DNS1123_LABEL.test(c['name'])) {
      causes.push(fieldRequired(`${field}.containers[${i}].name`));
    }
    if (!isJsonObject(c) || typeof c['image'] !== 'string' || c['image'].trim() === '') {
      causes.push(fieldRequired(`${field}.containers[${i}].image`));
    }
  });
}

function selectorMatches(selector: JsonObject | undefined, labels: Record<string, string>): boolean {
  const matchLabels = stringMap(selector?.['matchLabels']);
  return Object.entries(matchLabels).every(([k, v]) => labels[k] === v);
}

export function validate(type: ResourceType, o: JsonObject, old: JsonObject | undefined): StatusCause[] {
  const causes: StatusCause[] = [];
  const meta = obj(o['metadata']) ?? {};
  const name = meta['name'];
  const namePattern = type.kind === 'Service' ? DNS1035_LABEL : type.kind === 'Namespace' ? DNS1123_LABEL : DNS1123_SUBDOMAIN;
  const maxName = type.kind === 'Service' || type.kind === 'Namespace' ? 63 : 253;
  if (typeof name !== 'string' || name === '') {
    causes.push({ reason: 'FieldValueRequired', message: 'Required value: name or generateName is required', field: 'metadata.name' });
  } else if (name.length > maxName || !namePattern.test(name)) {
    causes.push(fieldInvalid('metadata.name', name, `a lowercase RFC ${type.kind === 'Service' ? '1035' : '1123'} name must consist of lower case alphanumeric characters or '-'`));
  }
  validateLabelMap('metadata.labels', meta['labels'], causes);
  const spec = obj(o['spec']);
  const oldSpec = obj(old?.['spec']);
  switch (type.kind) {
    case 'Deployment': {
      const selector = obj(spec?.['selector']);
      const template = obj(spec?.['template']);
      const templateLabels = stringMap(obj(template?.['metadata'])?.['labels']);
      if (!selector) causes.push(fieldRequired('spec.selector'));
      else if (Object.keys(stringMap(selector['matchLabels'])).length === 0 && !Array.isArray(selector['matchExpressions'])) {
        causes.push(fieldInvalid('spec.selector', selector, 'empty selector is invalid for deployment'));
      } else if (!selectorMatches(selector, templateLabels)) {
        causes.push(fieldInvalid('spec.template.metadata.labels', templateLabels, '`selector` does not match template `labels`'));
      }
      validateLabelSelector('spec.selector', selector, causes);
      validatePodTemplate('spec.template', template, causes);
      const replicas = spec?.['replicas'];
      if (replicas !== undefined && (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0)) {
        causes.push(fieldInvalid('spec.replicas', replicas, 'must be greater than or equal to 0'));
      }
      if (oldSpec && !jsonEqual(oldSpec['selector'], spec?.['selector'])) {
        causes.push(fieldInvalid('spec.selector', spec?.['selector'] ?? null, 'field is immutable'));
      }
      break;
    }
    case 'Service': {
      validateLabelMap('spec.selector', spec?.['selector'], causes);
      const ports = spec?.['ports'];
      if (Array.isArray(ports)) {
        ports.forEach((p, i) => {
          const port = isJsonObject(p) ? p['port'] : undefined;
          if (typeof port !== 'number' || port < 1 || port > 65535) {
            causes.push(fieldInvalid(`spec.ports[${i}].port`, port ?? null, 'must be between 1 and 65535, inclusive'));
          }
        });
      }
      if (oldSpec && oldSpec['clusterIP'] !== spec?.['clusterIP']) {
        causes.push(fieldInvalid('spec.clusterIP', spec?.['clusterIP'] ?? null, 'field is immutable'));
      }
      break;
    }
    case 'HorizontalPodAutoscaler': {
      const target = obj(spec?.['scaleTargetRef']);
      if (!target || typeof target['kind'] !== 'string') causes.push(fieldRequired('spec.scaleTargetRef.kind'));
      if (!target || typeof target['name'] !== 'string') causes.push(fieldRequired('spec.scaleTargetRef.name'));
      const min = spec?.['minReplicas'];
      const max = spec?.['maxReplicas'];
      if (min !== undefined && (typeof min !== 'number' || min < 1)) {
        causes.push(fieldInvalid('spec.minReplicas', min, 'must be greater than or equal to 1'));
      }
      if (typeof max !== 'number' || max < 1) causes.push(fieldInvalid('spec.maxReplicas', max ?? null, 'must be greater than or equal to 1'));
      else if (typeof min === 'number' && max < min) {
        causes.push(fieldInvalid('spec.maxReplicas', max, 'must be greater than or equal to `minReplicas`'));
      }
      const metrics = spec?.['metrics'];
      if (Array.isArray(metrics)) {
        metrics.forEach((m, i) => {
          const t = isJsonObject(m) ? m['type'] : undefined;
          if (!['Resource', 'Pods', 'Object', 'External', 'ContainerResource'].includes(String(t))) {
            causes.push(fieldInvalid(`spec.metrics[${i}].type`, t ?? null, 'must be one of Resource, Pods, Object, External, ContainerResource'));
          }
        });
      }
      break;
    }
    case 'Job': {
      const template = obj(spec?.['template']);
      const podSpec = obj(template?.['spec']);
      const restart = podSpec?.['restartPolicy'];
      if (restart !== 'Never' && restart !== 'OnFailure') {
        causes.push({ reason: 'FieldValueNotSupported', message: `Unsupported value: ${JSON.stringify(restart ?? '')}: supported values: "OnFailure", "Never"`, field: 'spec.template.spec.restartPolicy' });
      }
      validateLabelSelector('spec.selector', spec?.['selector'], causes);
      validatePodTemplate('spec.template', template, causes);
      if (oldSpec && !jsonEqual(oldSpec['template'], spec?.['template'])) {
        causes.push(fieldInvalid('spec.template', spec?.['template'] ?? null, 'field is immutable'));
      }
      if (oldSpec && !jsonEqual(oldSpec['selector'], spec?.['selector'])) {
        causes.push(fieldInvalid('spec.selector', spec?.['selector'] ?? null, 'field is immutable'));
      }
      break;
    }
    case 'Pod':
      validateLabelMap('spec.nodeSelector', spec?.['nodeSelector'], causes);
      break;
    default:
      break;
  }
  return causes;
}

/** A pod template: its labels, containers and nodeSelector (whose keys and values are label keys and values). */
function validatePodTemplate(field: string, template: JsonObject | undefined, causes: StatusCause[]): void {
  validateLabelMap(`${field}.metadata.labels`, obj(template?.['metadata'])?.['labels'], causes);
  const podSpec = obj(template?.['spec']);
  validateContainers(`${field}.spec`, podSpec, causes);
  validateLabelMap(`${field}.spec.nodeSelector`, podSpec?.['nodeSelector'], causes);
}
