import { z } from 'zod';
import { ModelInputSchema } from './model-input.js';

/**
 * Wire shapes of the hub <-> agent protocol (DESIGN.md section 6). Every
 * message crossing MQTT is parsed with one of these schemas at the boundary;
 * objects are strict so that an unknown field is an error, not a silent drop.
 */

export const PROTOCOL_VERSION = 1 as const;

const dnsLabel = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS label: lower-case letters, digits and "-"');
export const SpokeNameSchema = dnsLabel;
export const ObjectNameSchema = dnsLabel;

export const DigestSchema = z
  .string()
  .regex(/^sha256:[a-f0-9]{64}$/, 'must be "sha256:" followed by 64 lower-case hex digits');

export const ArtifactUriSchema = z
  .string()
  .max(2048)
  .regex(
    /^(file:|https?:\/\/|s3:\/\/|flotilla:(artifacts|spokes\/[a-z0-9-]{1,63}\/artifacts)\/sha256\/[a-f0-9]{64}$)/,
    'must start with file:, http://, https:// or s3://, or be flotilla:artifacts/sha256/<hex> (the hub\'s artifact store) or flotilla:spokes/<spoke>/artifacts/sha256/<hex> (kept on that spoke)',
  );

const isoTime = z.string().datetime({ offset: true });

/* ---------------------------------------------------------------- desired */

export const ReplicasSchema = z
  .object({
    min: z.number().int().min(0).max(1000),
    max: z.number().int().min(0).max(1000),
    targetConcurrency: z.number().int().min(1).max(10_000).optional(),
  })
  .strict()
  .refine((r) => r.max >= r.min, { message: 'max must be >= min', path: ['max'] });

export const WeekdaySchema = z.enum(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']);
const clock = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be HH:MM (24 h)');

export const ScheduleSchema = z
  .object({
    timezone: z.string().min(1),
    windows: z
      .array(
        z
          .object({
            days: z.array(WeekdaySchema).min(1),
            start: clock,
            end: clock,
            replicas: ReplicasSchema,
          })
          .strict(),
      )
      .min(1),
    outside: ReplicasSchema,
  })
  .strict();

export const ModelRefSchema = z
  .object({
    name: ObjectNameSchema,
    version: z.string().min(1).max(128),
    digest: DigestSchema,
    uri: ArtifactUriSchema,
    format: z.enum(['onnx', 'torchscript', 'tensorrt', 'savedmodel', 'safetensors', 'other']),
    sizeBytes: z.number().int().nonnegative().optional(),
    /** What an image backbone expects (size, layout, normalisation); read by the linear-probe trainer. */
    input: ModelInputSchema.optional(),
  })
  .strict();
export type ModelRef = z.infer<typeof ModelRefSchema>;

export const ResourcesSchema = z
  .object({
    gpu: z.number().int().min(0).max(64).default(0),
    cpu: z.string().max(16).optional(),
    memory: z.string().max(16).optional(),
  })
  .strict();

/** One ModelDeployment as rendered for one spoke. */
export const DesiredDeploymentSchema = z
  .object({
    name: ObjectNameSchema,
    model: ModelRefSchema,
    runtime: z.enum(['triton', 'builtin']),
    resources: ResourcesSchema,
    replicas: ReplicasSchema,
    schedule: ScheduleSchema.optional(),
    remediation: z.enum(['enforce', 'inform']),
    /** Extra node selector for the Kubernetes runtime (e.g. GPU product). */
    gpuProduct: z.string().max(128).optional(),
  })
  .strict();
export type DesiredDeployment = z.infer<typeof DesiredDeploymentSchema>;

export const TrainerSchema = z.union([
  z
    .object({
      builtin: z.enum(['linear-probe']),
      hyperparameters: z.record(z.string(), z.union([z.number(), z.string(), z.boolean()])).default({}),
    })
    .strict(),
  z
    .object({
      image: z.string().min(1).max(512),
      command: z.array(z.string()).optional(),
      hyperparameters: z.record(z.string(), z.union([z.number(), z.string(), z.boolean()])).default({}),
    })
    .strict(),
  /** A program installed on the appliance (argv), run by the process runtime under the trainer contract. */
  z
    .object({
      command: z.array(z.string().min(1).max(4096)).min(1).max(256),
      hyperparameters: z.record(z.string(), z.union([z.number(), z.string(), z.boolean()])).default({}),
    })
    .strict(),
]);

/** When a fine-tuning job may start, in the spoke's wall-clock time (windows as a deployment schedule's, without replicas). */
export const JobScheduleSchema = z
  .object({
    timezone: z.string().min(1),
    windows: z.array(z.object({ days: z.array(WeekdaySchema).min(1), start: clock, end: clock }).strict()).min(1),
  })
  .strict();
export type JobSchedule = z.infer<typeof JobScheduleSchema>;

/** Where the columns of a csv or jsonl dataset are (documented defaults apply on the spoke when absent). */
export const DatasetSpecSchema = z
  .object({
    path: z.string().min(1).max(4096),
    format: z.enum(['csv', 'jsonl', 'imagefolder']),
    /** csv/jsonl: the column (key) holding the class label; default "label". */
    labelColumn: z.string().min(1).max(128).optional(),
    /** csv/jsonl: the column holding an image path relative to the dataset directory; default "image". */
    imageColumn: z.string().min(1).max(128).optional(),
    /** csv/jsonl: numeric feature columns; when given, rows are feature vectors, not images. */
    featureColumns: z.array(z.string().min(1).max(128)).min(1).max(4096).optional(),
  })
  .strict();

/** One FineTuneJob as rendered for one spoke. */
export const DesiredFineTuneJobSchema = z
  .object({
    name: ObjectNameSchema,
    baseModel: ModelRefSchema,
    dataset: DatasetSpecSchema,
    trainer: TrainerSchema,
    evaluation: z
      .object({
        metric: z.enum(['accuracy', 'f1', 'loss']),
        holdoutFraction: z.number().gt(0).lt(1),
        threshold: z.number(),
        /** Also required: beat the version the spoke serves now, on the same held-out split, by this much (accuracy or f1). */
        minImprovement: z.number().min(0).max(1).optional(),
      })
      .strict(),
    output: z.object({ model: ObjectNameSchema, artifact: z.enum(['keep-local', 'upload']) }).strict(),
    promote: z.enum(['auto', 'manual']),
    resources: ResourcesSchema.optional(),
    /** Whole-run limit in seconds (default 2 h on the spoke). */
    timeoutSeconds: z.number().int().min(1).max(30 * 86400).optional(),
    /** A run starts only inside one of these windows; one under way at a window's end is let finish. */
    schedule: JobScheduleSchema.optional(),
  })
  .strict();
export type DesiredFineTuneJob = z.infer<typeof DesiredFineTuneJobSchema>;

/** The whole desired state of one spoke: what the agent must make true. */
export const DesiredPayloadSchema = z
  .object({
    settings: z
      .object({
        telemetryIntervalSeconds: z.number().int().min(5).max(3600),
      })
      .strict(),
    deployments: z.array(DesiredDeploymentSchema),
    fineTuneJobs: z.array(DesiredFineTuneJobSchema),
  })
  .strict();
export type DesiredPayload = z.infer<typeof DesiredPayloadSchema>;

/**
 * A hub signing key announced under the key before it (signing-key rotation):
 * `sig` is the previous key's Ed25519 signature over the canonical JSON of
 * `{purpose: "flotilla.hub-signing-key", publicKey}` (see signing-key-chain.ts).
 */
export const KeyAnnouncementSchema = z
  .object({
    publicKey: z.string().min(1).max(1024),
    sig: z.string().min(1).max(200),
  })
  .strict();
export type KeyAnnouncement = z.infer<typeof KeyAnnouncementSchema>;

/** Signed envelope carried on flotilla/v1/spokes/S/desired. */
export const EnvelopeSchema = z
  .object({
    v: z.literal(PROTOCOL_VERSION),
    spoke: SpokeNameSchema,
    generation: z.number().int().positive(),
    issuedAt: isoTime,
    payload: DesiredPayloadSchema,
    sig: z.string().min(1).max(200),
    /** The hub's key rotations, oldest first, the last being the key that signed this envelope; outside the signature (each link is signed). */
    keys: z.array(KeyAnnouncementSchema).max(16).optional(),
  })
  .strict();
export type Envelope = z.infer<typeof EnvelopeSchema>;
export type UnsignedEnvelope = Omit<Envelope, 'sig'>;

/* ----------------------------------------------------------------- status */

export const ConditionSchema = z
  .object({
    type: z.string().min(1).max(64),
    status: z.enum(['True', 'False', 'Unknown']),
    reason: z.string().max(128).regex(/^[A-Za-z][A-Za-z0-9]*$/, 'must be CamelCase'),
    message: z.string().max(2048).default(''),
    lastTransitionTime: isoTime,
    /** Generation of the desired state this condition was computed from (as Kubernetes' `condition.observedGeneration`). */
    observedGeneration: z.number().int().min(0).optional(),
  })
  .strict();
export type Condition = z.infer<typeof ConditionSchema>;

/** On the wire every condition says which generation it describes. */
export const ReportedConditionSchema = ConditionSchema.extend({ observedGeneration: z.number().int().min(0) }).strict();
export type ReportedCondition = z.infer<typeof ReportedConditionSchema>;

export const GpuDeviceSchema = z
  .object({
    index: z.number().int().min(0),
    uuid: z.string().max(128),
    product: z.string().max(128),
    memoryGiB: z.number().nonnegative(),
    mig: z.boolean().default(false),
  })
  .strict();

/** What a spoke can host; the hub places against it. */
export const CapacitySchema = z
  .object({
    cpuCores: z.number().nonnegative(),
    memoryGiB: z.number().nonnegative(),
    gpus: z.array(GpuDeviceSchema).max(64),
  })
  .strict();
export type Capacity = z.infer<typeof CapacitySchema>;

export const WorkloadPhaseSchema = z.enum(['Pending', 'Progressing', 'Ready', 'Degraded', 'Failed', 'ScaledToZero']);

export const DeploymentStatusSchema = z
  .object({
    name: ObjectNameSchema,
    phase: WorkloadPhaseSchema,
    readyReplicas: z.number().int().min(0),
    desiredReplicas: z.number().int().min(0),
    servingVersion: z.string().max(128).nullable(),
    endpoint: z.string().max(2048).nullable(),
    /** Compliance with the desired spec; NonCompliant carries what differs. */
    compliance: z.enum(['Compliant', 'NonCompliant', 'Pending']),
    conditions: z.array(ConditionSchema).max(32),
    message: z.string().max(2048).default(''),
  })
  .strict();
/** A deployment's status as a runtime computes it; the agent stamps the generation when it reports it. */
export type DeploymentStatus = z.infer<typeof DeploymentStatusSchema>;

/** A deployment's status on the wire: computed by the reconcile of `observedGeneration`. */
export const ReportedDeploymentStatusSchema = DeploymentStatusSchema.extend({
  observedGeneration: z.number().int().min(0),
  conditions: z.array(ReportedConditionSchema).max(32),
}).strict();
export type ReportedDeploymentStatus = z.infer<typeof ReportedDeploymentStatusSchema>;

/** The version a fine-tuning run produced on the spoke, as the hub registers it (level-based: repeated in every report). */
export const ProducedVersionSchema = z
  .object({
    version: z.string().min(1).max(128),
    digest: DigestSchema,
    sizeBytes: z.number().int().nonnegative(),
    format: z.literal('onnx'),
    /** Where the blob is: flotilla:spokes/<spoke>/artifacts/sha256/<hex> (keep-local) or flotilla:artifacts/sha256/<hex> (uploaded to the hub's store). */
    uri: ArtifactUriSchema,
    datasetFingerprint: DigestSchema,
  })
  .strict();
export type ProducedVersion = z.infer<typeof ProducedVersionSchema>;

/** Where a fine-tuning run stands on the spoke, in detail (the report's `phase` folds the middle ones into Running). */
export const JOB_RUN_STAGES = ['Pending', 'Preparing', 'Training', 'Evaluating', 'Registering', 'Succeeded', 'Failed', 'Rejected'] as const;
export type JobRunStage = (typeof JOB_RUN_STAGES)[number];

export const JobRunStatusSchema = z
  .object({
    name: ObjectNameSchema,
    /** Rejected: trained, but the evaluation gate refused the result. */
    phase: z.enum(['Pending', 'Running', 'Succeeded', 'Failed', 'Rejected']),
    /** The detailed stage (Preparing, Training, Evaluating, Registering while Running); absent from older agents. */
    stage: z.enum(JOB_RUN_STAGES).optional(),
    /** sha256 of the dataset's sorted relative paths and sizes, once read (never its contents). */
    datasetFingerprint: DigestSchema.optional(),
    progress: z.number().min(0).max(1),
    metrics: z.record(z.string(), z.number()).default({}),
    producedVersion: z.string().max(128).nullable(),
    message: z.string().max(2048).default(''),
    produced: ProducedVersionSchema.optional(),
  })
  .strict();
export type JobRunStatus = z.infer<typeof JobRunStatusSchema>;

/** A job run's status on the wire, with the generation whose reconcile computed it. */
export const ReportedJobRunStatusSchema = JobRunStatusSchema.extend({ observedGeneration: z.number().int().min(0) }).strict();
export type ReportedJobRunStatus = z.infer<typeof ReportedJobRunStatusSchema>;

/** Sent on flotilla/v1/spokes/S/status. */
export const StatusReportSchema = z
  .object({
    v: z.literal(PROTOCOL_VERSION),
    spoke: SpokeNameSchema,
    sentAt: isoTime,
    /** Generation of the last envelope the agent verified and stored (0 before any). */
    acceptedGeneration: z.number().int().min(0),
    /** Generation whose reconcile has finished (0 before any); never above acceptedGeneration. */
    observedGeneration: z.number().int().min(0),
    conditions: z.array(ReportedConditionSchema).max(32),
    capacity: CapacitySchema.optional(),
    deployments: z.array(ReportedDeploymentStatusSchema).max(256),
    jobs: z.array(ReportedJobRunStatusSchema).max(256),
    agent: z
      .object({ version: z.string().max(64), runtime: z.enum(['process', 'kubernetes', 'none']) })
      .strict()
      .optional(),
  })
  .strict()
  .refine((r) => r.observedGeneration <= r.acceptedGeneration, {
    message: 'observedGeneration cannot be above acceptedGeneration',
    path: ['observedGeneration'],
  });
export type StatusReport = z.infer<typeof StatusReportSchema>;

/** Sent retained on flotilla/v1/spokes/S/presence (also the MQTT will). */
export const PresenceSchema = z
  .object({
    v: z.literal(PROTOCOL_VERSION),
    spoke: SpokeNameSchema,
    state: z.enum(['online', 'offline']),
    sessionId: z.string().min(1).max(64),
    at: isoTime,
  })
  .strict();
export type Presence = z.infer<typeof PresenceSchema>;

/** Sent on flotilla/v1/spokes/S/events. */
export const EventSchema = z
  .object({
    v: z.literal(PROTOCOL_VERSION),
    spoke: SpokeNameSchema,
    at: isoTime,
    type: z.enum(['EnvelopeRejected', 'JobProgress', 'ModelVersionProduced', 'WorkloadError', 'Notice', 'CommandResult']),
    reason: z.string().max(128),
    message: z.string().max(4096).default(''),
    data: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();
export type AgentEvent = z.infer<typeof EventSchema>;

/** Compact health summary on flotilla/v1/spokes/S/telemetry (DESIGN.md section 8). */
export const TelemetrySchema = z
  .object({
    v: z.literal(PROTOCOL_VERSION),
    spoke: SpokeNameSchema,
    at: isoTime,
    host: z
      .object({
        cpuUtilisation: z.number().min(0).max(1),
        memoryUsedBytes: z.number().nonnegative(),
        memoryTotalBytes: z.number().nonnegative(),
        diskUsedBytes: z.number().nonnegative(),
        diskTotalBytes: z.number().nonnegative(),
      })
      .strict(),
    gpus: z
      .array(
        z
          .object({
            index: z.number().int().min(0),
            uuid: z.string().max(128),
            product: z.string().max(128),
            utilisation: z.number().min(0).max(1),
            memoryUsedBytes: z.number().nonnegative(),
            memoryTotalBytes: z.number().nonnegative(),
            temperatureC: z.number().nullable(),
            powerW: z.number().nullable(),
          })
          .strict(),
      )
      .max(64),
    inference: z
      .array(
        z
          .object({
            deployment: ObjectNameSchema,
            requestsPerSecond: z.number().nonnegative(),
            errorRatio: z.number().min(0).max(1),
            latencyP50Ms: z.number().nonnegative().nullable(),
            latencyP99Ms: z.number().nonnegative().nullable(),
          })
          .strict(),
      )
      .max(256),
    agent: z
      .object({
        reconcileSeconds: z.number().nonnegative(),
        reconcileErrors: z.number().int().nonnegative(),
        queuedReports: z.number().int().nonnegative(),
      })
      .strict(),
    errors: z.array(z.string().max(512)).max(16).default([]),
  })
  .strict();
export type Telemetry = z.infer<typeof TelemetrySchema>;

/** One-shot commands on flotilla/v1/spokes/S/commands. */
export const CommandSchema = z
  .object({
    v: z.literal(PROTOCOL_VERSION),
    id: z.string().min(1).max(64),
    type: z.enum(['resync', 'diagnostics', 'restart']),
    /** The deployment a `restart` restarts. */
    target: ObjectNameSchema.optional(),
    issuedAt: isoTime,
  })
  .strict()
  .refine((c) => c.type !== 'restart' || c.target !== undefined, { message: 'restart needs a target deployment', path: ['target'] });
export type Command = z.infer<typeof CommandSchema>;
