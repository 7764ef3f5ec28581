import { type JsonObject } from './json.js';

/**
 * The schemas of the objects the fake serves, named and shaped as in the real
 * server's OpenAPI documents (`io.k8s.api.apps.v1.Deployment`...), with the
 * extensions clients read: `x-kubernetes-group-version-kind` on top-level
 * kinds, `x-kubernetes-patch-merge-key`/`-patch-strategy` and
 * `x-kubernetes-list-type`/`-list-map-keys` on keyed lists (kubectl computes
 * strategic merge patches from them), and `x-kubernetes-int-or-string`.
 *
 * One source feeds `/openapi/v2`, `/openapi/v3` and the server's own field
 * validation (unknown fields), so what kubectl is told and what the server
 * enforces cannot drift apart. Deep structures the fake has no use for
 * (affinity, security contexts, lifecycle hooks, most volume sources) are
 * objects that keep unknown fields: present, but not described field by
 * field. References are bare schema names here; the documents turn them into
 * `#/definitions/...` (v2) or `#/components/schemas/...` (v3).
 */
export type SchemaNode = JsonObject;

const str = (description?: string): SchemaNode => ({ type: 'string', ...(description ? { description } : {}) });
const int32 = (): SchemaNode => ({ type: 'integer', format: 'int32' });
const int64 = (): SchemaNode => ({ type: 'integer', format: 'int64' });
const bool = (): SchemaNode => ({ type: 'boolean' });
const ref = (name: string): SchemaNode => ({ $ref: name });
const stringMap = (): SchemaNode => ({ type: 'object', additionalProperties: str() });
/** An object the fake does not describe further: kept as sent, never "unknown". */
const opaque = (description: string): SchemaNode => ({ type: 'object', description, 'x-kubernetes-preserve-unknown-fields': true });
const atomicList = (items: SchemaNode): SchemaNode => ({ type: 'array', items, 'x-kubernetes-list-type': 'atomic' });
/** A list merged element by element on `key` (strategic merge patch and server-side apply). */
const keyedList = (items: SchemaNode, key: string, mapKeys: string[] = [key]): SchemaNode => ({
  type: 'array',
  items,
  'x-kubernetes-patch-merge-key': key,
  'x-kubernetes-patch-strategy': 'merge',
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': mapKeys,
});
const obj = (properties: Record<string, SchemaNode>, extra: JsonObject = {}): SchemaNode => ({ type: 'object', properties, ...extra });
const gvk = (group: string, version: string, kind: string): JsonObject => ({
  'x-kubernetes-group-version-kind': [{ group, kind, version }],
});

const META = 'io.k8s.apimachinery.pkg.apis.meta.v1';
const CORE = 'io.k8s.api.core.v1';
const QUANTITY = 'io.k8s.apimachinery.pkg.api.resource.Quantity';
const INT_OR_STRING = 'io.k8s.apimachinery.pkg.util.intstr.IntOrString';
const TIME = `${META}.Time`;

/** apiVersion, kind and metadata, as every top-level object has them. */
function topLevel(spec: string | undefined, status: string | undefined, kind: JsonObject, description: string): SchemaNode {
  return obj(
    {
      apiVersion: str('APIVersion defines the versioned schema of this representation of an object.'),
      kind: str('Kind is a string value representing the REST resource this object represents.'),
      metadata: ref(`${META}.ObjectMeta`),
      ...(spec ? { spec: ref(spec) } : {}),
      ...(status ? { status: ref(status) } : {}),
    },
    { description, ...kind },
  );
}

function listOf(item: string, kind: JsonObject): SchemaNode {
  return obj(
    { apiVersion: str(), kind: str(), metadata: ref(`${META}.ListMeta`), items: { type: 'array', items: ref(item) } },
    { required: ['items'], ...kind },
  );
}

const conditionList = (item: string): SchemaNode => keyedList(ref(item), 'type');

export const DEFINITIONS: Record<string, SchemaNode> = {
  // apimachinery
  [QUANTITY]: { type: 'string', description: 'Quantity is a fixed-point representation of a number (e.g. 500m, 2Gi).' },
  [INT_OR_STRING]: { type: 'string', format: 'int-or-string', 'x-kubernetes-int-or-string': true },
  [TIME]: { type: 'string', format: 'date-time' },
  [`${META}.ObjectMeta`]: obj({
    name: str('Name must be unique within a namespace.'),
    generateName: str(),
    namespace: str(),
    uid: str(),
    resourceVersion: str(),
    generation: int64(),
    creationTimestamp: ref(TIME),
    deletionTimestamp: ref(TIME),
    deletionGracePeriodSeconds: int64(),
    labels: stringMap(),
    annotations: stringMap(),
    ownerReferences: keyedList(ref(`${META}.OwnerReference`), 'uid'),
    finalizers: { type: 'array', items: str(), 'x-kubernetes-patch-strategy': 'merge', 'x-kubernetes-list-type': 'set' },
    managedFields: atomicList(ref(`${META}.ManagedFieldsEntry`)),
    selfLink: str(),
  }),
  [`${META}.ListMeta`]: obj({ resourceVersion: str(), continue: str(), remainingItemCount: int64(), selfLink: str() }),
  [`${META}.OwnerReference`]: obj(
    { apiVersion: str(), kind: str(), name: str(), uid: str(), controller: bool(), blockOwnerDeletion: bool() },
    { required: ['apiVersion', 'kind', 'name', 'uid'], 'x-kubernetes-map-type': 'atomic' },
  ),
  [`${META}.ManagedFieldsEntry`]: obj({
    manager: str(),
    operation: str(),
    apiVersion: str(),
    time: ref(TIME),
    fieldsType: str(),
    fieldsV1: opaque('FieldsV1 stores a set of fields in a data structure like a Trie.'),
    subresource: str(),
  }),
  [`${META}.LabelSelector`]: obj(
    { matchLabels: stringMap(), matchExpressions: atomicList(ref(`${META}.LabelSelectorRequirement`)) },
    { 'x-kubernetes-map-type': 'atomic' },
  ),
  [`${META}.LabelSelectorRequirement`]: obj({ key: str(), operator: str(), values: atomicList(str()) }, { required: ['key', 'operator'] }),
  [`${META}.Patch`]: {
    type: 'object',
    description: 'Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.',
  },
  [`${META}.DeleteOptions`]: obj(
    {
      apiVersion: str(),
      kind: str(),
      dryRun: atomicList(str()),
      gracePeriodSeconds: int64(),
      ignoreStoreReadErrorWithClusterBreakingPotential: bool(),
      orphanDependents: bool(),
      preconditions: obj({ resourceVersion: str(), uid: str() }),
      propagationPolicy: str(),
    },
    { description: 'DeleteOptions may be provided when deleting an API object.' },
  ),
  [`${META}.Status`]: obj(
    {
      apiVersion: str(),
      kind: str(),
      metadata: ref(`${META}.ListMeta`),
      status: str(),
      message: str(),
      reason: str(),
      details: opaque('StatusDetails'),
      code: int32(),
    },
    { description: 'Status is a return value for calls that do not return other objects.' },
  ),
  [`${META}.Condition`]: obj({
    type: str(),
    status: str(),
    observedGeneration: int64(),
    lastTransitionTime: ref(TIME),
    reason: str(),
    message: str(),
  }),

  // core/v1
  [`${CORE}.Namespace`]: topLevel(`${CORE}.NamespaceSpec`, `${CORE}.NamespaceStatus`, gvk('', 'v1', 'Namespace'), 'Namespace provides a scope for Names.'),
  [`${CORE}.NamespaceList`]: listOf(`${CORE}.Namespace`, gvk('', 'v1', 'NamespaceList')),
  [`${CORE}.NamespaceSpec`]: obj({ finalizers: atomicList(str()) }),
  [`${CORE}.NamespaceStatus`]: obj({ phase: str(), conditions: conditionList(`${META}.Condition`) }),
  [`${CORE}.ConfigMap`]: obj(
    {
      apiVersion: str(),
      kind: str(),
      metadata: ref(`${META}.ObjectMeta`),
      data: stringMap(),
      binaryData: { type: 'object', additionalProperties: { type: 'string', format: 'byte' } },
      immutable: bool(),
    },
    { description: 'ConfigMap holds configuration data for pods to consume.', ...gvk('', 'v1', 'ConfigMap') },
  ),
  [`${CORE}.ConfigMapList`]: listOf(`${CORE}.ConfigMap`, gvk('', 'v1', 'ConfigMapList')),
  [`${CORE}.Pod`]: topLevel(`${CORE}.PodSpec`, `${CORE}.PodStatus`, gvk('', 'v1', 'Pod'), 'Pod is a collection of containers that can run on a host.'),
  [`${CORE}.PodList`]: listOf(`${CORE}.Pod`, gvk('', 'v1', 'PodList')),
  [`${CORE}.PodTemplateSpec`]: obj({ metadata: ref(`${META}.ObjectMeta`), spec: ref(`${CORE}.PodSpec`) }),
  [`${CORE}.PodSpec`]: obj(
    {
      volumes: keyedList(ref(`${CORE}.Volume`), 'name'),
      initContainers: keyedList(ref(`${CORE}.Container`), 'name'),
      containers: keyedList(ref(`${CORE}.Container`), 'name'),
      ephemeralContainers: keyedList(opaque('EphemeralContainer'), 'name'),
      restartPolicy: str(),
      terminationGracePeriodSeconds: int64(),
      activeDeadlineSeconds: int64(),
      dnsPolicy: str(),
      nodeSelector: { ...stringMap(), 'x-kubernetes-map-type': 'atomic' },
      serviceAccountName: str(),
      serviceAccount: str(),
      automountServiceAccountToken: bool(),
      nodeName: str(),
      hostNetwork: bool(),
      hostPID: bool(),
      hostIPC: bool(),
      shareProcessNamespace: bool(),
      securityContext: opaque('PodSecurityContext'),
      imagePullSecrets: keyedList(obj({ name: str() }), 'name'),
      hostname: str(),
      subdomain: str(),
      affinity: opaque('Affinity'),
      schedulerName: str(),
      tolerations: atomicList(ref(`${CORE}.Toleration`)),
      hostAliases: keyedList(opaque('HostAlias'), 'ip'),
      priorityClassName: str(),
      priority: int32(),
      dnsConfig: opaque('PodDNSConfig'),
      readinessGates: atomicList(obj({ conditionType: str() })),
      runtimeClassName: str(),
      enableServiceLinks: bool(),
      preemptionPolicy: str(),
      overhead: { type: 'object', additionalProperties: ref(QUANTITY) },
      topologySpreadConstraints: keyedList(opaque('TopologySpreadConstraint'), 'topologyKey', ['topologyKey', 'whenUnsatisfiable']),
      setHostnameAsFQDN: bool(),
      os: obj({ name: str() }),
      hostUsers: bool(),
      schedulingGates: keyedList(obj({ name: str() }), 'name'),
      resourceClaims: keyedList(opaque('PodResourceClaim'), 'name'),
      resources: ref(`${CORE}.ResourceRequirements`),
    },
    { required: ['containers'] },
  ),
  [`${CORE}.Container`]: obj(
    {
      name: str(),
      image: str(),
      command: atomicList(str()),
      args: atomicList(str()),
      workingDir: str(),
      ports: keyedList(ref(`${CORE}.ContainerPort`), 'containerPort', ['containerPort', 'protocol']),
      envFrom: atomicList(opaque('EnvFromSource')),
      env: keyedList(ref(`${CORE}.EnvVar`), 'name'),
      resources: ref(`${CORE}.ResourceRequirements`),
      resizePolicy: atomicList(obj({ resourceName: str(), restartPolicy: str() })),
      restartPolicy: str(),
      volumeMounts: keyedList(ref(`${CORE}.VolumeMount`), 'mountPath'),
      volumeDevices: keyedList(obj({ name: str(), devicePath: str() }), 'devicePath'),
      livenessProbe: ref(`${CORE}.Probe`),
      readinessProbe: ref(`${CORE}.Probe`),
      startupProbe: ref(`${CORE}.Probe`),
      lifecycle: opaque('Lifecycle'),
      terminationMessagePath: str(),
      terminationMessagePolicy: str(),
      imagePullPolicy: str(),
      securityContext: opaque('SecurityContext'),
      stdin: bool(),
      stdinOnce: bool(),
      tty: bool(),
    },
    { required: ['name'] },
  ),
  [`${CORE}.ContainerPort`]: obj({ name: str(), hostPort: int32(), containerPort: int32(), protocol: str(), hostIP: str() }, { required: ['containerPort'] }),
  [`${CORE}.EnvVar`]: obj({ name: str(), value: str(), valueFrom: opaque('EnvVarSource') }, { required: ['name'] }),
  [`${CORE}.ResourceRequirements`]: obj({
    limits: { type: 'object', additionalProperties: ref(QUANTITY) },
    requests: { type: 'object', additionalProperties: ref(QUANTITY) },
    claims: keyedList(obj({ name: str(), request: str() }), 'name'),
  }),
  [`${CORE}.VolumeMount`]: obj(
    { name: str(), readOnly: bool(), recursiveReadOnly: str(), mountPath: str(), subPath: str(), mountPropagation: str(), subPathExpr: str() },
    { required: ['name', 'mountPath'] },
  ),
  [`${CORE}.Probe`]: obj({
    exec: obj({ command: atomicList(str()) }),
    httpGet: obj(
      { path: str(), port: ref(INT_OR_STRING), host: str(), scheme: str(), httpHeaders: atomicList(obj({ name: str(), value: str() })) },
      { required: ['port'] },
    ),
    tcpSocket: obj({ port: ref(INT_OR_STRING), host: str() }, { required: ['port'] }),
    grpc: obj({ port: int32(), service: str() }, { required: ['port'] }),
    initialDelaySeconds: int32(),
    timeoutSeconds: int32(),
    periodSeconds: int32(),
    successThreshold: int32(),
    failureThreshold: int32(),
    terminationGracePeriodSeconds: int64(),
  }),
  [`${CORE}.Toleration`]: obj({ key: str(), operator: str(), value: str(), effect: str(), tolerationSeconds: int64() }),
  [`${CORE}.Volume`]: obj(
    {
      name: str(),
      hostPath: obj({ path: str(), type: str() }, { required: ['path'] }),
      emptyDir: obj({ medium: str(), sizeLimit: ref(QUANTITY) }),
      persistentVolumeClaim: obj({ claimName: str(), readOnly: bool() }, { required: ['claimName'] }),
      configMap: opaque('ConfigMapVolumeSource'),
      secret: opaque('SecretVolumeSource'),
      projected: opaque('ProjectedVolumeSource'),
      downwardAPI: opaque('DownwardAPIVolumeSource'),
      csi: opaque('CSIVolumeSource'),
      ephemeral: opaque('EphemeralVolumeSource'),
      nfs: opaque('NFSVolumeSource'),
      image: opaque('ImageVolumeSource'),
    },
    { required: ['name'] },
  ),
  [`${CORE}.PodStatus`]: obj({
    observedGeneration: int64(),
    phase: str(),
    conditions: conditionList(`${CORE}.PodCondition`),
    message: str(),
    reason: str(),
    nominatedNodeName: str(),
    hostIP: str(),
    hostIPs: atomicList(obj({ ip: str() })),
    podIP: str(),
    podIPs: keyedList(obj({ ip: str() }), 'ip'),
    startTime: ref(TIME),
    initContainerStatuses: atomicList(ref(`${CORE}.ContainerStatus`)),
    containerStatuses: atomicList(ref(`${CORE}.ContainerStatus`)),
    ephemeralContainerStatuses: atomicList(ref(`${CORE}.ContainerStatus`)),
    qosClass: str(),
    resize: str(),
    resourceClaimStatuses: atomicList(opaque('PodResourceClaimStatus')),
  }),
  [`${CORE}.PodCondition`]: obj({
    type: str(),
    observedGeneration: int64(),
    status: str(),
    lastProbeTime: ref(TIME),
    lastTransitionTime: ref(TIME),
    reason: str(),
    message: str(),
  }),
  [`${CORE}.ContainerStatus`]: obj({
    name: str(),
    state: opaque('ContainerState'),
    lastState: opaque('ContainerState'),
    ready: bool(),
    restartCount: int32(),
    image: str(),
    imageID: str(),
    containerID: str(),
    started: bool(),
    allocatedResources: { type: 'object', additionalProperties: ref(QUANTITY) },
    resources: ref(`${CORE}.ResourceRequirements`),
    volumeMounts: atomicList(opaque('VolumeMountStatus')),
    user: opaque('ContainerUser'),
    allocatedResourcesStatus: atomicList(opaque('ResourceStatus')),
    stopSignal: str(),
  }),
  [`${CORE}.Service`]: topLevel(`${CORE}.ServiceSpec`, `${CORE}.ServiceStatus`, gvk('', 'v1', 'Service'), 'Service is a named abstraction of software service.'),
  [`${CORE}.ServiceList`]: listOf(`${CORE}.Service`, gvk('', 'v1', 'ServiceList')),
  [`${CORE}.ServiceSpec`]: obj({
    ports: keyedList(ref(`${CORE}.ServicePort`), 'port', ['port', 'protocol']),
    selector: { ...stringMap(), 'x-kubernetes-map-type': 'atomic' },
    clusterIP: str(),
    clusterIPs: atomicList(str()),
    type: str(),
    externalIPs: atomicList(str()),
    sessionAffinity: str(),
    loadBalancerIP: str(),
    loadBalancerSourceRanges: atomicList(str()),
    externalName: str(),
    externalTrafficPolicy: str(),
    healthCheckNodePort: int32(),
    publishNotReadyAddresses: bool(),
    sessionAffinityConfig: opaque('SessionAffinityConfig'),
    ipFamilies: atomicList(str()),
    ipFamilyPolicy: str(),
    allocateLoadBalancerNodePorts: bool(),
    loadBalancerClass: str(),
    internalTrafficPolicy: str(),
    trafficDistribution: str(),
  }),
  [`${CORE}.ServicePort`]: obj(
    { name: str(), protocol: str(), appProtocol: str(), port: int32(), targetPort: ref(INT_OR_STRING), nodePort: int32() },
    { required: ['port'] },
  ),
  [`${CORE}.ServiceStatus`]: obj({ loadBalancer: opaque('LoadBalancerStatus'), conditions: conditionList(`${META}.Condition`) }),

  // apps/v1
  'io.k8s.api.apps.v1.Deployment': topLevel(
    'io.k8s.api.apps.v1.DeploymentSpec',
    'io.k8s.api.apps.v1.DeploymentStatus',
    gvk('apps', 'v1', 'Deployment'),
    'Deployment enables declarative updates for Pods and ReplicaSets.',
  ),
  'io.k8s.api.apps.v1.DeploymentList': listOf('io.k8s.api.apps.v1.Deployment', gvk('apps', 'v1', 'DeploymentList')),
  'io.k8s.api.apps.v1.DeploymentSpec': obj(
    {
      replicas: int32(),
      selector: ref(`${META}.LabelSelector`),
      template: ref(`${CORE}.PodTemplateSpec`),
      strategy: obj({
        type: str(),
        rollingUpdate: obj({ maxUnavailable: ref(INT_OR_STRING), maxSurge: ref(INT_OR_STRING) }),
      }),
      minReadySeconds: int32(),
      revisionHistoryLimit: int32(),
      paused: bool(),
      progressDeadlineSeconds: int32(),
    },
    { required: ['selector', 'template'] },
  ),
  'io.k8s.api.apps.v1.DeploymentStatus': obj({
    observedGeneration: int64(),
    replicas: int32(),
    updatedReplicas: int32(),
    readyReplicas: int32(),
    availableReplicas: int32(),
    unavailableReplicas: int32(),
    terminatingReplicas: int32(),
    conditions: conditionList('io.k8s.api.apps.v1.DeploymentCondition'),
    collisionCount: int32(),
  }),
  'io.k8s.api.apps.v1.DeploymentCondition': obj({
    type: str(),
    status: str(),
    lastUpdateTime: ref(TIME),
    lastTransitionTime: ref(TIME),
    reason: str(),
    message: str(),
  }),

  // autoscaling/v1 Scale (the scale subresource of Deployments)
  'io.k8s.api.autoscaling.v1.Scale': obj(
    {
      apiVersion: str(),
      kind: str(),
      metadata: ref(`${META}.ObjectMeta`),
      spec: obj({ replicas: int32() }),
      status: obj({ replicas: int32(), selector: str() }, { required: ['replicas'] }),
    },
    { description: 'Scale represents a scaling request for a resource.', ...gvk('autoscaling', 'v1', 'Scale') },
  ),

  // autoscaling/v2
  'io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler': topLevel(
    'io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec',
    'io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus',
    gvk('autoscaling', 'v2', 'HorizontalPodAutoscaler'),
    'HorizontalPodAutoscaler is the configuration for a horizontal pod autoscaler.',
  ),
  'io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerList': listOf(
    'io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler',
    gvk('autoscaling', 'v2', 'HorizontalPodAutoscalerList'),
  ),
  'io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec': obj(
    {
      scaleTargetRef: obj({ apiVersion: str(), kind: str(), name: str() }, { required: ['kind', 'name'] }),
      minReplicas: int32(),
      maxReplicas: int32(),
      metrics: atomicList(ref('io.k8s.api.autoscaling.v2.MetricSpec')),
      behavior: opaque('HorizontalPodAutoscalerBehavior'),
    },
    { required: ['scaleTargetRef', 'maxReplicas'] },
  ),
  'io.k8s.api.autoscaling.v2.MetricSpec': obj(
    {
      type: str(),
      resource: obj({ name: str(), target: ref('io.k8s.api.autoscaling.v2.MetricTarget') }),
      containerResource: obj({ name: str(), container: str(), target: ref('io.k8s.api.autoscaling.v2.MetricTarget') }),
      pods: obj({ metric: ref('io.k8s.api.autoscaling.v2.MetricIdentifier'), target: ref('io.k8s.api.autoscaling.v2.MetricTarget') }),
      object: obj({
        describedObject: obj({ apiVersion: str(), kind: str(), name: str() }),
        metric: ref('io.k8s.api.autoscaling.v2.MetricIdentifier'),
        target: ref('io.k8s.api.autoscaling.v2.MetricTarget'),
      }),
      external: obj({ metric: ref('io.k8s.api.autoscaling.v2.MetricIdentifier'), target: ref('io.k8s.api.autoscaling.v2.MetricTarget') }),
    },
    { required: ['type'] },
  ),
  'io.k8s.api.autoscaling.v2.MetricIdentifier': obj({ name: str(), selector: ref(`${META}.LabelSelector`) }, { required: ['name'] }),
  'io.k8s.api.autoscaling.v2.MetricTarget': obj(
    { type: str(), value: ref(QUANTITY), averageValue: ref(QUANTITY), averageUtilization: int32() },
    { required: ['type'] },
  ),
  'io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus': obj({
    observedGeneration: int64(),
    lastScaleTime: ref(TIME),
    currentReplicas: int32(),
    desiredReplicas: int32(),
    currentMetrics: atomicList(opaque('MetricStatus')),
    conditions: conditionList(`${META}.Condition`),
  }),

  // batch/v1
  'io.k8s.api.batch.v1.Job': topLevel(
    'io.k8s.api.batch.v1.JobSpec',
    'io.k8s.api.batch.v1.JobStatus',
    gvk('batch', 'v1', 'Job'),
    'Job represents the configuration of a single job.',
  ),
  'io.k8s.api.batch.v1.JobList': listOf('io.k8s.api.batch.v1.Job', gvk('batch', 'v1', 'JobList')),
  'io.k8s.api.batch.v1.JobSpec': obj(
    {
      parallelism: int32(),
      completions: int32(),
      activeDeadlineSeconds: int64(),
      podFailurePolicy: opaque('PodFailurePolicy'),
      successPolicy: opaque('SuccessPolicy'),
      backoffLimit: int32(),
      backoffLimitPerIndex: int32(),
      maxFailedIndexes: int32(),
      selector: ref(`${META}.LabelSelector`),
      manualSelector: bool(),
      template: ref(`${CORE}.PodTemplateSpec`),
      ttlSecondsAfterFinished: int32(),
      completionMode: str(),
      suspend: bool(),
      podReplacementPolicy: str(),
      managedBy: str(),
    },
    { required: ['template'] },
  ),
  'io.k8s.api.batch.v1.JobStatus': obj({
    conditions: atomicList(ref('io.k8s.api.batch.v1.JobCondition')),
    startTime: ref(TIME),
    completionTime: ref(TIME),
    active: int32(),
    succeeded: int32(),
    failed: int32(),
    terminating: int32(),
    completedIndexes: str(),
    failedIndexes: str(),
    uncountedTerminatedPods: opaque('UncountedTerminatedPods'),
    ready: int32(),
  }),
  'io.k8s.api.batch.v1.JobCondition': obj({
    type: str(),
    status: str(),
    lastProbeTime: ref(TIME),
    lastTransitionTime: ref(TIME),
    reason: str(),
    message: str(),
  }),
};

/** The schema a node refers to, following `$ref`s (bare names, as stored here). */
export function resolveSchema(node: SchemaNode | undefined): SchemaNode | undefined {
  let current = node;
  for (let hops = 0; current && typeof current['$ref'] === 'string' && hops < 10; hops++) {
    current = DEFINITIONS[current['$ref']];
  }
  return current;
}

/** Every schema name reachable from `roots`, so a group-version document carries what its kinds use and no more. */
export function reachableSchemas(roots: string[]): string[] {
  const seen = new Set<string>();
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(visit);
    else if (typeof value === 'object' && value !== null) {
      for (const [key, child] of Object.entries(value)) {
        if (key === '$ref' && typeof child === 'string') {
          if (!seen.has(child)) {
            seen.add(child);
            visit(DEFINITIONS[child]);
          }
        } else {
          visit(child);
        }
      }
    }
  };
  for (const root of roots) {
    seen.add(root);
    visit(DEFINITIONS[root]);
  }
  return [...seen].sort();
}
